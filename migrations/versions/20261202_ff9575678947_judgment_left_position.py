"""Judgment left position: the response position shown on the left, kept on the judgment for quality reports.

Revision ID: ff9575678947
Revises: a8b4c2d6e0f1
Create Date: 2026-12-02 20:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ff9575678947"
down_revision: str | None = "a8b4c2d6e0f1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("judgment", schema=None) as batch_op:
        batch_op.add_column(sa.Column("left_position", sa.Integer(), nullable=True))
    # An assignment's shown order never changes once it is judged.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "UPDATE judgment SET left_position = (assignment.shown_order ->> 0)::integer "
            "FROM assignment WHERE assignment.id = judgment.assignment_id"
        )
    else:
        op.execute(
            "UPDATE judgment SET left_position = "
            "(SELECT json_extract(assignment.shown_order, '$[0]') FROM assignment "
            "WHERE assignment.id = judgment.assignment_id)"
        )


def downgrade() -> None:
    with op.batch_alter_table("judgment", schema=None) as batch_op:
        batch_op.drop_column("left_position")
