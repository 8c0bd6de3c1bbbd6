"""ORM models: the v1 schema of prefstack."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from preference_store.base import Base, PortableJSON, utcnow


class Role(enum.StrEnum):
    ANNOTATOR = "annotator"
    LEAD = "lead"
    ADMIN = "admin"


class ProjectKind(enum.StrEnum):
    PAIRWISE = "pairwise"
    RUBRIC = "rubric"
    RANKING = "ranking"


class AssignmentState(enum.StrEnum):
    LEASED = "leased"
    SUBMITTED = "submitted"
    EXPIRED = "expired"
    SKIPPED = "skipped"


def _str_enum(enum_type: type[enum.StrEnum], name: str) -> Enum:
    return Enum(
        enum_type,
        name=name,
        native_enum=False,
        length=16,
        validate_strings=True,
        values_callable=lambda members: [member.value for member in members],
    )


class Team(Base):
    """A vendor (BPO) or in-house group of annotators."""

    __tablename__ = "team"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    is_vendor: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    users: Mapped[list[User]] = relationship(back_populates="team", lazy="raise_on_sql")


class User(Base):
    __tablename__ = "app_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(_str_enum(Role, "role"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("team.id", ondelete="SET NULL"))
    languages: Mapped[list[str]] = mapped_column(PortableJSON, default=list)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    ui_language: Mapped[str | None] = mapped_column(String(16))
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    team: Mapped[Team | None] = relationship(back_populates="users", lazy="raise_on_sql")


class LoginSession(Base):
    """A browser session; the cookie carries the token, the table keeps only its hash."""

    __tablename__ = "login_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


class ApiToken(Base):
    """A bearer token for the JSON API, stored as a SHA-256 hash."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class Project(Base):
    __tablename__ = "project"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[ProjectKind] = mapped_column(_str_enum(ProjectKind, "project_kind"))
    guidelines: Mapped[str] = mapped_column(Text, default="")
    guidelines_version: Mapped[int] = mapped_column(default=1)
    overlap: Mapped[int] = mapped_column(default=1)
    lease_seconds: Mapped[int] = mapped_column(default=1800)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    is_archived: Mapped[bool] = mapped_column(default=False)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class GuidelinesVersion(Base):
    """Every version of a project's guidelines; judgments record the one they were made under."""

    __tablename__ = "guidelines_version"

    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    note: Mapped[str] = mapped_column(Text, default="")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProjectMember(Base):
    """Which annotators work on which project (leads and admins see every project)."""

    __tablename__ = "project_member"

    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), primary_key=True, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Item(Base):
    """One prompt or conversation whose candidate responses are judged."""

    __tablename__ = "item"
    __table_args__ = (
        UniqueConstraint("project_id", "external_id"),
        Index("ix_item_project_id_id", "project_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(200))
    messages: Mapped[list[dict[str, Any]]] = mapped_column(PortableJSON)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    content_hash: Mapped[str] = mapped_column(String(64))
    is_sensitive: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    responses: Mapped[list[Response]] = relationship(
        back_populates="item", lazy="raise_on_sql", order_by="Response.position"
    )


class ItemQueue(Base):
    """The claim queue: one narrow, often-updated row per item, apart from its content.

    `open_slots` counts the assignments an item can still take (overlap minus live
    leases and submissions); the partial indexes hold only items that can be served.
    `rank` is the serving order (priority first, then import order, see
    `preference_store.queue.queue_rank`). `is_reopened` marks items whose slot came back
    from an expired or skipped lease, or whose priority changed, which annotators'
    cursors may already have passed. `language` routes items to annotators.
    """

    __tablename__ = "item_queue"
    __table_args__ = (
        Index(
            "ix_item_queue_open",
            "project_id",
            "rank",
            sqlite_where=text("open_slots > 0"),
            postgresql_where=text("open_slots > 0"),
        ),
        # Spelled as each dialect renders `is_reopened` in a WHERE clause, so the
        # planners can prove the claim query matches (SQLite writes booleans as 1).
        # is_reopened is a key column too, so that even with ANALYZE statistics this
        # (nearly always empty) index looks more selective than ix_item_queue_open.
        Index(
            "ix_item_queue_reopened",
            "project_id",
            "is_reopened",
            "rank",
            sqlite_where=text("is_reopened = 1 AND open_slots > 0"),
            postgresql_where=text("is_reopened AND open_slots > 0"),
        ),
    )

    item_id: Mapped[int] = mapped_column(ForeignKey("item.id", ondelete="CASCADE"), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    open_slots: Mapped[int] = mapped_column(Integer)
    is_reopened: Mapped[bool] = mapped_column(default=False)
    rank: Mapped[int] = mapped_column(BigInteger)
    language: Mapped[str | None] = mapped_column(String(16))


class Response(Base):
    """A candidate model response to an item."""

    __tablename__ = "response"
    __table_args__ = (UniqueConstraint("item_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("item.id", ondelete="CASCADE"))
    position: Mapped[int]
    model_name: Mapped[str] = mapped_column(String(200), default="")
    content: Mapped[str] = mapped_column(Text)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)

    item: Mapped[Item] = relationship(back_populates="responses", lazy="raise_on_sql")


class Assignment(Base):
    """An item leased to one annotator, with the order its responses were shown in."""

    __tablename__ = "assignment"
    __table_args__ = (
        UniqueConstraint("annotator_id", "project_id", "item_id"),
        Index(
            "ix_assignment_live_lease",
            "annotator_id",
            "project_id",
            unique=True,
            sqlite_where=text("state = 'leased'"),
            postgresql_where=text("state = 'leased'"),
        ),
        Index(
            "ix_assignment_lease_expiry",
            "project_id",
            "leased_until",
            sqlite_where=text("state = 'leased'"),
            postgresql_where=text("state = 'leased'"),
        ),
        Index("ix_assignment_item_id", "item_id"),
        Index("ix_assignment_cursor", "annotator_id", "project_id", "queue_rank"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("item.id", ondelete="CASCADE"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"))
    shown_order: Mapped[list[int]] = mapped_column(PortableJSON)
    queue_rank: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[AssignmentState] = mapped_column(_str_enum(AssignmentState, "assignment_state"))
    leased_until: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]
    skip_reason: Mapped[str | None] = mapped_column(Text)


class Judgment(Base):
    """An annotator's verdict on one assignment; at most one per assignment.

    The row holds the current version; earlier versions move to `judgment_revision`.
    `verdict` is the decision in a canonical short form, so disagreement is a GROUP BY.
    """

    __tablename__ = "judgment"
    __table_args__ = (
        Index("ix_judgment_project_id_item_id", "project_id", "item_id"),
        Index("ix_judgment_annotator_day", "annotator_id", "project_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignment.id", ondelete="CASCADE"), unique=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("item.id", ondelete="CASCADE"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"))
    payload: Mapped[dict[str, Any]]
    time_spent_ms: Mapped[int | None]
    guidelines_version: Mapped[int]
    verdict: Mapped[str] = mapped_column(String(120))
    revision: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revised_at: Mapped[datetime | None]


class JudgmentRevision(Base):
    """An earlier version of a judgment, kept when its annotator changed it."""

    __tablename__ = "judgment_revision"
    __table_args__ = (UniqueConstraint("judgment_id", "revision"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    judgment_id: Mapped[int] = mapped_column(ForeignKey("judgment.id", ondelete="CASCADE"))
    revision: Mapped[int]
    payload: Mapped[dict[str, Any]]
    verdict: Mapped[str] = mapped_column(String(120))
    time_spent_ms: Mapped[int | None]
    guidelines_version: Mapped[int]
    made_at: Mapped[datetime]
    replaced_at: Mapped[datetime] = mapped_column(default=utcnow)


class ExportJobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class ExportJob(Base):
    """An export written in the background: its parameters, progress and result.

    `output_path` is relative to the configured exports directory. `worker` names the
    process (host:pid) that runs it, so a restarted server can tell its own dead jobs.
    """

    __tablename__ = "export_job"
    __table_args__ = (
        Index("ix_export_job_project_id_id", "project_id", "id"),
        Index("ix_export_job_state", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(16))
    parameters: Mapped[dict[str, Any]]
    state: Mapped[ExportJobState] = mapped_column(_str_enum(ExportJobState, "export_job_state"))
    items_read: Mapped[int] = mapped_column(default=0)
    split_rows: Mapped[dict[str, Any] | None] = mapped_column(PortableJSON)
    content_hash: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    output_path: Mapped[str | None] = mapped_column(String(500))
    worker: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class ClarificationState(enum.StrEnum):
    OPEN = "open"
    ANSWERED = "answered"
    DISMISSED = "dismissed"


class Clarification(Base):
    """A question an annotator raised about a project's guidelines, and a lead's answer.

    `guidelines_version` is the version the asker saw; `absorbed_in_version` the later
    version of the guidelines that took the answer in, once a lead linked them.
    """

    __tablename__ = "clarification"
    __table_args__ = (
        Index("ix_clarification_project_id_state_id", "project_id", "state", "id"),
        Index("ix_clarification_project_id_guidelines_version", "project_id", "guidelines_version"),
        Index("ix_clarification_asked_by_id_project_id_id", "asked_by_id", "project_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    item_id: Mapped[int | None] = mapped_column(ForeignKey("item.id", ondelete="SET NULL"))
    asked_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))
    question: Mapped[str] = mapped_column(Text)
    asked_at: Mapped[datetime] = mapped_column(default=utcnow)
    guidelines_version: Mapped[int]
    answer: Mapped[str | None] = mapped_column(Text)
    answered_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))
    answered_at: Mapped[datetime | None]
    state: Mapped[ClarificationState] = mapped_column(_str_enum(ClarificationState, "clarification_state"))
    absorbed_in_version: Mapped[int | None]
