"""External verdicts: judgments imported with items (datasets, judge models, other tools).

Revision ID: e6f0a2c4b8d1
Revises: e7d3a9c15b42
Create Date: 2026-12-02 14:55:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "e6f0a2c4b8d1"
down_revision: str | None = "e7d3a9c15b42"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "external_verdict",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("judge", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("payload", _json, nullable=False),
        sa.Column("verdict", sa.String(length=120), nullable=True),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"], ["item.id"], name=op.f("fk_external_verdict_item_id_item"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["project.id"], name=op.f("fk_external_verdict_project_id_project"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_external_verdict")),
        sa.UniqueConstraint("item_id", "source", "judge", name=op.f("uq_external_verdict_item_id_source_judge")),
    )
    with op.batch_alter_table("external_verdict", schema=None) as batch_op:
        batch_op.create_index(
            "ix_external_verdict_project_id_source_judge", ["project_id", "source", "judge"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("external_verdict", schema=None) as batch_op:
        batch_op.drop_index("ix_external_verdict_project_id_source_judge")
    op.drop_table("external_verdict")
