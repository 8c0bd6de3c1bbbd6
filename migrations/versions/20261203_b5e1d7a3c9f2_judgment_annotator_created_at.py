"""Judgment index on (annotator_id, created_at): an annotator's judgments in any project over a span.

Revision ID: b5e1d7a3c9f2
Revises: ff9575678947
Create Date: 2026-12-03 09:30:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "b5e1d7a3c9f2"
down_revision: str | None = "ff9575678947"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_judgment_annotator_id_created_at", "judgment", ["annotator_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_judgment_annotator_id_created_at", table_name="judgment")
