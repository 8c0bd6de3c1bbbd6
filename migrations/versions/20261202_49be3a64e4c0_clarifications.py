"""Policy clarifications: annotators' questions about the guidelines, leads' answers.

Revision ID: 49be3a64e4c0
Revises: 3f8b2d6e1a94
Create Date: 2026-12-02 12:37:59.475148+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "49be3a64e4c0"
down_revision: str | None = "3f8b2d6e1a94"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "clarification",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=True),
        sa.Column("asked_by_id", sa.Integer(), nullable=True),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("asked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("guidelines_version", sa.Integer(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("answered_by_id", sa.Integer(), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "state",
            sa.Enum("open", "answered", "dismissed", name="clarification_state", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("absorbed_in_version", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["answered_by_id"],
            ["app_user.id"],
            name=op.f("fk_clarification_answered_by_id_app_user"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["asked_by_id"], ["app_user.id"], name=op.f("fk_clarification_asked_by_id_app_user"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["item_id"], ["item.id"], name=op.f("fk_clarification_item_id_item"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["project.id"], name=op.f("fk_clarification_project_id_project"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clarification")),
    )
    with op.batch_alter_table("clarification", schema=None) as batch_op:
        batch_op.create_index(
            "ix_clarification_asked_by_id_project_id_id", ["asked_by_id", "project_id", "id"], unique=False
        )
        batch_op.create_index(
            "ix_clarification_project_id_guidelines_version", ["project_id", "guidelines_version"], unique=False
        )
        batch_op.create_index("ix_clarification_project_id_state_id", ["project_id", "state", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("clarification", schema=None) as batch_op:
        batch_op.drop_index("ix_clarification_project_id_state_id")
        batch_op.drop_index("ix_clarification_project_id_guidelines_version")
        batch_op.drop_index("ix_clarification_asked_by_id_project_id_id")

    op.drop_table("clarification")
