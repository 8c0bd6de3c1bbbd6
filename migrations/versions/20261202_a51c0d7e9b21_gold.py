"""Gold answers, paused project members and notifications.

Revision ID: a51c0d7e9b21
Revises: 49be3a64e4c0
Create Date: 2026-12-02 14:50:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "a51c0d7e9b21"
down_revision: str | None = "49be3a64e4c0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "gold_answer",
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("verdict", sa.String(length=120), nullable=False),
        sa.Column("accepted_verdicts", _json, nullable=False),
        sa.Column("payload", _json, nullable=False),
        sa.Column("explanation", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["app_user.id"], name=op.f("fk_gold_answer_created_by_id_app_user"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(["item_id"], ["item.id"], name=op.f("fk_gold_answer_item_id_item"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["project.id"], name=op.f("fk_gold_answer_project_id_project"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("item_id", name=op.f("pk_gold_answer")),
    )
    with op.batch_alter_table("gold_answer", schema=None) as batch_op:
        batch_op.create_index("ix_gold_answer_project_id_item_id", ["project_id", "item_id"], unique=False)

    op.create_table(
        "notification",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recipient_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("subject_user_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"], ["project.id"], name=op.f("fk_notification_project_id_project"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["recipient_id"], ["app_user.id"], name=op.f("fk_notification_recipient_id_app_user"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["subject_user_id"],
            ["app_user.id"],
            name=op.f("fk_notification_subject_user_id_app_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification")),
    )
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.create_index(
            "ix_notification_recipient_id_read_at_id", ["recipient_id", "read_at", "id"], unique=False
        )

    with op.batch_alter_table("project_member", schema=None) as batch_op:
        batch_op.add_column(sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("pause_reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("resumed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("project_member", schema=None) as batch_op:
        batch_op.drop_column("resumed_at")
        batch_op.drop_column("pause_reason")
        batch_op.drop_column("paused_at")

    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.drop_index("ix_notification_recipient_id_read_at_id")
    op.drop_table("notification")

    with op.batch_alter_table("gold_answer", schema=None) as batch_op:
        batch_op.drop_index("ix_gold_answer_project_id_item_id")
    op.drop_table("gold_answer")
