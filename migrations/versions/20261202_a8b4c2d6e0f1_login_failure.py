"""Failed logins in the database, so every worker counts them together.

Revision ID: a8b4c2d6e0f1
Revises: d2c8e4a6f1b3
Create Date: 2026-12-02 19:45:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a8b4c2d6e0f1"
down_revision: str | None = "d2c8e4a6f1b3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "login_failure",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_digest", sa.String(length=64), nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_failure")),
    )
    with op.batch_alter_table("login_failure", schema=None) as batch_op:
        batch_op.create_index("ix_login_failure_key_digest_failed_at", ["key_digest", "failed_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_login_failure_failed_at"), ["failed_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("login_failure", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_login_failure_failed_at"))
        batch_op.drop_index("ix_login_failure_key_digest_failed_at")
    op.drop_table("login_failure")
