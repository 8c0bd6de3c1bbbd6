"""Calibration sessions: blind rounds, their items, participants and answers.

Revision ID: c4a1b7e2d9f3
Revises: a51c0d7e9b21
Create Date: 2026-12-02 14:55:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "c4a1b7e2d9f3"
down_revision: str | None = "a51c0d7e9b21"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[object]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "calibration_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column(
            "state",
            sa.Enum("blind", "revealed", "closed", name="calibration_state", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("team_ids", _json(), nullable=False),
        sa.Column("after_days", sa.Integer(), nullable=False),
        sa.Column("blind_alpha", sa.Double(), nullable=True),
        sa.Column("blind_alpha_low", sa.Double(), nullable=True),
        sa.Column("blind_alpha_high", sa.Double(), nullable=True),
        sa.Column("blind_percent_agreement", sa.Double(), nullable=True),
        sa.Column("agreed_share", sa.Double(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revealed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["app_user.id"],
            name=op.f("fk_calibration_session_created_by_id_app_user"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["project.id"], name=op.f("fk_calibration_session_project_id_project"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calibration_session")),
    )
    with op.batch_alter_table("calibration_session", schema=None) as batch_op:
        batch_op.create_index("ix_calibration_session_project_id_id", ["project_id", "id"], unique=False)

    op.create_table(
        "calibration_participant",
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["calibration_session.id"],
            name=op.f("fk_calibration_participant_session_id_calibration_session"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["app_user.id"], name=op.f("fk_calibration_participant_user_id_app_user"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("session_id", "user_id", name=op.f("pk_calibration_participant")),
    )
    with op.batch_alter_table("calibration_participant", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_calibration_participant_user_id"), ["user_id"], unique=False)

    op.create_table(
        "calibration_item",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("agreed_verdict", sa.String(length=120), nullable=True),
        sa.Column("agreed_payload", _json(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("is_gold", sa.Boolean(), nullable=False),
        sa.Column("agreed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["item_id"], ["item.id"], name=op.f("fk_calibration_item_item_id_item"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["calibration_session.id"],
            name=op.f("fk_calibration_item_session_id_calibration_session"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calibration_item")),
        sa.UniqueConstraint("session_id", "item_id", name=op.f("uq_calibration_item_session_id_item_id")),
    )
    with op.batch_alter_table("calibration_item", schema=None) as batch_op:
        batch_op.create_index("ix_calibration_item_item_id", ["item_id"], unique=False)

    op.create_table(
        "calibration_answer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("calibration_item_id", sa.Integer(), nullable=False),
        sa.Column("annotator_id", sa.Integer(), nullable=False),
        sa.Column("shown_order", _json(), nullable=False),
        sa.Column("payload", _json(), nullable=True),
        sa.Column("verdict", sa.String(length=120), nullable=True),
        sa.Column("time_spent_ms", sa.Integer(), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["annotator_id"],
            ["app_user.id"],
            name=op.f("fk_calibration_answer_annotator_id_app_user"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["calibration_item_id"],
            ["calibration_item.id"],
            name=op.f("fk_calibration_answer_calibration_item_id_calibration_item"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["calibration_session.id"],
            name=op.f("fk_calibration_answer_session_id_calibration_session"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calibration_answer")),
        sa.UniqueConstraint(
            "calibration_item_id", "annotator_id", name=op.f("uq_calibration_answer_calibration_item_id_annotator_id")
        ),
    )
    with op.batch_alter_table("calibration_answer", schema=None) as batch_op:
        batch_op.create_index(
            "ix_calibration_answer_annotator_id_session_id", ["annotator_id", "session_id"], unique=False
        )
        batch_op.create_index("ix_calibration_answer_session_id", ["session_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("calibration_answer", schema=None) as batch_op:
        batch_op.drop_index("ix_calibration_answer_session_id")
        batch_op.drop_index("ix_calibration_answer_annotator_id_session_id")
    op.drop_table("calibration_answer")
    with op.batch_alter_table("calibration_item", schema=None) as batch_op:
        batch_op.drop_index("ix_calibration_item_item_id")
    op.drop_table("calibration_item")
    with op.batch_alter_table("calibration_participant", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_calibration_participant_user_id"))
    op.drop_table("calibration_participant")
    with op.batch_alter_table("calibration_session", schema=None) as batch_op:
        batch_op.drop_index("ix_calibration_session_project_id_id")
    op.drop_table("calibration_session")
