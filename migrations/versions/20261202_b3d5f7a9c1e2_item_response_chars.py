"""Item response characters: the characters of an item's responses, stored at import for quality reports.

Revision ID: b3d5f7a9c1e2
Revises: e6f0a2c4b8d1
Create Date: 2026-12-02 15:50:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b3d5f7a9c1e2"
down_revision: str | None = "e6f0a2c4b8d1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("item", schema=None) as batch_op:
        batch_op.add_column(sa.Column("response_chars", sa.Integer(), server_default=sa.text("0"), nullable=False))
    # length() counts characters on both engines; responses never change after import.
    op.execute(
        "UPDATE item SET response_chars = "
        "(SELECT coalesce(sum(length(response.content)), 0) FROM response WHERE response.item_id = item.id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("item", schema=None) as batch_op:
        batch_op.drop_column("response_chars")
