"""Repeat assignments: items served again to the same annotator, sides swapped (self-consistency).

Revision ID: d2c8e4a6f1b3
Revises: f3a9c7d1e5b0
Create Date: 2026-12-02 19:30:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "d2c8e4a6f1b3"
down_revision: str | None = "f3a9c7d1e5b0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "repeat_assignment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("annotator_id", sa.Integer(), nullable=False),
        sa.Column("judgment_id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.Integer(), nullable=False),
        sa.Column("shown_order", _json, nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "leased",
                "submitted",
                "expired",
                "skipped",
                name="repeat_assignment_state",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("skip_reason", sa.Text(), nullable=True),
        sa.Column("payload", _json, nullable=True),
        sa.Column("verdict", sa.String(length=120), nullable=True),
        sa.Column("time_spent_ms", sa.Integer(), nullable=True),
        sa.Column("answer_public_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["annotator_id"],
            ["app_user.id"],
            name=op.f("fk_repeat_assignment_annotator_id_app_user"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["item_id"], ["item.id"], name=op.f("fk_repeat_assignment_item_id_item"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["judgment_id"],
            ["judgment.id"],
            name=op.f("fk_repeat_assignment_judgment_id_judgment"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["project.id"], name=op.f("fk_repeat_assignment_project_id_project"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_repeat_assignment")),
        sa.UniqueConstraint(
            "annotator_id", "project_id", "item_id", name=op.f("uq_repeat_assignment_annotator_id_project_id_item_id")
        ),
        sa.UniqueConstraint("annotator_id", "public_id", name=op.f("uq_repeat_assignment_annotator_id_public_id")),
    )
    with op.batch_alter_table("repeat_assignment", schema=None) as batch_op:
        batch_op.create_index(
            "ix_repeat_assignment_live_lease",
            ["annotator_id", "project_id"],
            unique=True,
            sqlite_where=sa.text("state = 'leased'"),
            postgresql_where=sa.text("state = 'leased'"),
        )
        batch_op.create_index("ix_repeat_assignment_project_id_state", ["project_id", "state"], unique=False)
        batch_op.create_index("ix_repeat_assignment_judgment_id", ["judgment_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("repeat_assignment", schema=None) as batch_op:
        batch_op.drop_index("ix_repeat_assignment_judgment_id")
        batch_op.drop_index("ix_repeat_assignment_project_id_state")
        batch_op.drop_index(
            "ix_repeat_assignment_live_lease",
            sqlite_where=sa.text("state = 'leased'"),
            postgresql_where=sa.text("state = 'leased'"),
        )
    op.drop_table("repeat_assignment")
