"""Arbitration: disputed items a lead settles with a final verdict.

Revision ID: e7d3a9c15b42
Revises: c4a1b7e2d9f3
Create Date: 2026-12-02 14:50:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "e7d3a9c15b42"
down_revision: str | None = "c4a1b7e2d9f3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "arbitration_case",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column(
            "reason",
            sa.Enum("low_agreement", "against_gold", "manual", name="arbitration_reason", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column(
            "state",
            sa.Enum("open", "resolved", "dismissed", name="arbitration_state", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("agreement", sa.Float(), nullable=True),
        sa.Column("judgments", sa.Integer(), nullable=False),
        sa.Column("extended_by", sa.Integer(), nullable=False),
        sa.Column("verdict", sa.String(length=120), nullable=True),
        sa.Column(
            "payload", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True
        ),
        sa.Column("rationale", sa.Text(), nullable=True),
        sa.Column("opened_by_id", sa.Integer(), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_by_id", sa.Integer(), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["item_id"], ["item.id"], name=op.f("fk_arbitration_case_item_id_item"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["opened_by_id"],
            ["app_user.id"],
            name=op.f("fk_arbitration_case_opened_by_id_app_user"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["project.id"], name=op.f("fk_arbitration_case_project_id_project"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["resolved_by_id"],
            ["app_user.id"],
            name=op.f("fk_arbitration_case_resolved_by_id_app_user"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_arbitration_case")),
        sa.UniqueConstraint("project_id", "item_id", name=op.f("uq_arbitration_case_project_id_item_id")),
    )
    with op.batch_alter_table("arbitration_case", schema=None) as batch_op:
        batch_op.create_index("ix_arbitration_case_item_id", ["item_id"], unique=False)
        batch_op.create_index(
            "ix_arbitration_case_project_id_state_opened_at_id",
            ["project_id", "state", "opened_at", "id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("arbitration_case", schema=None) as batch_op:
        batch_op.drop_index("ix_arbitration_case_project_id_state_opened_at_id")
        batch_op.drop_index("ix_arbitration_case_item_id")

    op.drop_table("arbitration_case")
