"""ORM models: the v1 schema of prefstack."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Enum,
    Float,
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


class LoginFailure(Base):
    """A failed login, counted per key (a digest of the email or the client address) by every worker."""

    __tablename__ = "login_failure"
    __table_args__ = (Index("ix_login_failure_key_digest_failed_at", "key_digest", "failed_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key_digest: Mapped[str] = mapped_column(String(64))
    failed_at: Mapped[datetime] = mapped_column(index=True)


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
    # Set when the member's gold accuracy fell below the project's floor; a lead clears it.
    paused_at: Mapped[datetime | None]
    pause_reason: Mapped[str | None] = mapped_column(Text)
    # The floor counts only gold answers given after the last resume.
    resumed_at: Mapped[datetime | None]


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
    response_chars: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    """Characters of all its responses, set at import (quality reports' time per 1,000 characters)."""

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
    `left_position` is the assignment's `shown_order[0]` (the response shown on the left),
    kept here so quality reports read no assignment; None on rows stored without it.
    """

    __tablename__ = "judgment"
    __table_args__ = (
        Index("ix_judgment_project_id_item_id", "project_id", "item_id"),
        Index("ix_judgment_annotator_day", "annotator_id", "project_id", "created_at"),
        # An annotator's judgments in any project over a span (today's, the streak's days).
        Index("ix_judgment_annotator_id_created_at", "annotator_id", "created_at"),
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
    left_position: Mapped[int | None]
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


class GoldAnswer(Base):
    """An item's expected answer, set by a lead (or a calibration session).

    `verdict` and `accepted_verdicts` are canonical verdict keys as in `Judgment.verdict`;
    a judgment is correct when its verdict is either. `payload` is the expected judgment
    payload by response position, kept so a page can show the answer.
    """

    __tablename__ = "gold_answer"
    __table_args__ = (Index("ix_gold_answer_project_id_item_id", "project_id", "item_id"),)

    item_id: Mapped[int] = mapped_column(ForeignKey("item.id", ondelete="CASCADE"), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    verdict: Mapped[str] = mapped_column(String(120))
    accepted_verdicts: Mapped[list[str]] = mapped_column(PortableJSON, default=list)
    payload: Mapped[dict[str, Any]]
    explanation: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(16), default="lead")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Notification(Base):
    """A message for one user (leads: an annotator paused on gold), read or not.

    `subject_user_id` is the user the message is about, so the reader can act on it.
    """

    __tablename__ = "notification"
    __table_args__ = (Index("ix_notification_recipient_id_read_at_id", "recipient_id", "read_at", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    recipient_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"))
    project_id: Mapped[int | None] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    subject_user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    read_at: Mapped[datetime | None]


class CalibrationState(enum.StrEnum):
    BLIND = "blind"
    REVEALED = "revealed"
    CLOSED = "closed"


class CalibrationSession(Base):
    """A calibration round: a group answers the same items blind, then a lead reveals and agrees.

    `team_ids` records the teams the group was built from (for display); the participants
    themselves are `calibration_participant` rows. The `blind_*` figures are the blind round's
    agreement, kept at reveal; `agreed_share` (answers equal to the agreed answer) at close.
    """

    __tablename__ = "calibration_session"
    __table_args__ = (Index("ix_calibration_session_project_id_id", "project_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    notes: Mapped[str] = mapped_column(Text, default="")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))
    state: Mapped[CalibrationState] = mapped_column(_str_enum(CalibrationState, "calibration_state"))
    team_ids: Mapped[list[int]] = mapped_column(PortableJSON, default=list)
    after_days: Mapped[int] = mapped_column(default=14)
    blind_alpha: Mapped[float | None]
    blind_alpha_low: Mapped[float | None]
    blind_alpha_high: Mapped[float | None]
    blind_percent_agreement: Mapped[float | None]
    agreed_share: Mapped[float | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revealed_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]


class CalibrationParticipant(Base):
    __tablename__ = "calibration_participant"

    session_id: Mapped[int] = mapped_column(ForeignKey("calibration_session.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), primary_key=True, index=True)


class CalibrationItem(Base):
    """An item of a calibration session, with the answer the lead recorded after the reveal."""

    __tablename__ = "calibration_item"
    __table_args__ = (
        UniqueConstraint("session_id", "item_id"),
        Index("ix_calibration_item_item_id", "item_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("calibration_session.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("item.id", ondelete="CASCADE"))
    position: Mapped[int]
    agreed_verdict: Mapped[str | None] = mapped_column(String(120))
    agreed_payload: Mapped[dict[str, Any] | None] = mapped_column(PortableJSON)
    note: Mapped[str] = mapped_column(Text, default="")
    is_gold: Mapped[bool] = mapped_column(default=False)
    agreed_at: Mapped[datetime | None]


class CalibrationAnswer(Base):
    """A participant's blind answer to a calibration item: not a judgment, never exported or reported.

    The row exists (with its random `shown_order`) from the moment the item is given to the
    participant; `verdict` and `payload` stay NULL until they answer.
    """

    __tablename__ = "calibration_answer"
    __table_args__ = (
        UniqueConstraint("calibration_item_id", "annotator_id"),
        Index("ix_calibration_answer_annotator_id_session_id", "annotator_id", "session_id"),
        Index("ix_calibration_answer_session_id", "session_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("calibration_session.id", ondelete="CASCADE"))
    calibration_item_id: Mapped[int] = mapped_column(ForeignKey("calibration_item.id", ondelete="CASCADE"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"))
    shown_order: Mapped[list[int]] = mapped_column(PortableJSON)
    payload: Mapped[dict[str, Any] | None] = mapped_column(PortableJSON)
    verdict: Mapped[str | None] = mapped_column(String(120))
    time_spent_ms: Mapped[int | None]
    answered_at: Mapped[datetime | None]


class ArbitrationReason(enum.StrEnum):
    LOW_AGREEMENT = "low_agreement"
    AGAINST_GOLD = "against_gold"
    MANUAL = "manual"


class ArbitrationState(enum.StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"
    DISMISSED = "dismissed"


class ArbitrationCase(Base):
    """A disputed item a lead settles: at most one case per item, the raw judgments untouched.

    `agreement` and `judgments` are the modal verdict's share and the judgment count when the
    case opened; `extended_by` the extra annotators adaptive overlap added before it did.
    `verdict` (canonical, like `Judgment.verdict`) and `payload` (by response position) are
    the lead's final verdict, which exports use as the item's label.
    """

    __tablename__ = "arbitration_case"
    __table_args__ = (
        UniqueConstraint("project_id", "item_id"),
        Index("ix_arbitration_case_project_id_state_opened_at_id", "project_id", "state", "opened_at", "id"),
        Index("ix_arbitration_case_item_id", "item_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("item.id", ondelete="CASCADE"))
    reason: Mapped[ArbitrationReason] = mapped_column(_str_enum(ArbitrationReason, "arbitration_reason"))
    state: Mapped[ArbitrationState] = mapped_column(_str_enum(ArbitrationState, "arbitration_state"))
    agreement: Mapped[float | None] = mapped_column(Float)
    judgments: Mapped[int] = mapped_column(default=0)
    extended_by: Mapped[int] = mapped_column(default=0)
    verdict: Mapped[str | None] = mapped_column(String(120))
    payload: Mapped[dict[str, Any] | None] = mapped_column(PortableJSON)
    rationale: Mapped[str | None] = mapped_column(Text)
    opened_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))
    resolved_at: Mapped[datetime | None]


class ExternalVerdict(Base):
    """A judgment made outside prefstack (a dataset's preference, a judge model, another tool's labeller).

    `payload` is by response position, as the import readers produce it: `{"choice": 0 | "tie"}`,
    `{"scores": {"0": {"aspect": 4}}}` or `{"ranking": [[0], [1, 2]]}`. `verdict` is the key human
    judgments use (`p0`, `tie`, `0>1=2`), None for scores. Never shown to annotators.
    """

    __tablename__ = "external_verdict"
    __table_args__ = (
        UniqueConstraint("item_id", "source", "judge"),
        Index("ix_external_verdict_project_id_source_judge", "project_id", "source", "judge"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("item.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(64))
    judge: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]]
    verdict: Mapped[str | None] = mapped_column(String(120))
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEvent(Base):
    """One lead or admin action: who did what to which thing, with before/after details."""

    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_event_at_id", "at", "id"),
        Index("ix_audit_event_project_id_at_id", "project_id", "at", "id"),
        Index("ix_audit_event_actor_id_at_id", "actor_id", "at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))
    actor_role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64))
    project_id: Mapped[int | None] = mapped_column(ForeignKey("project.id", ondelete="SET NULL"))
    target_type: Mapped[str | None] = mapped_column(String(40))
    target_id: Mapped[str | None] = mapped_column(String(200))
    details: Mapped[dict[str, Any]]
    request_id: Mapped[str | None] = mapped_column(String(64))
    client: Mapped[str | None] = mapped_column(String(64))


class RepeatAssignment(Base):
    """An item served again to an annotator who judged it, sides swapped, to measure self-consistency.

    Never an assignment or a judgment: it takes no overlap slot and no reader of judgments sees
    it. `judgment_id` is the first judgment it repeats. `public_id` is the id the task travels
    under (URLs, forms, the API): an assignment id of another annotator, so it can never be one
    of the caller's own and looks like any other. `answer_public_id` is the judgment id the
    answer was reported under. `payload` and `verdict` (as in `Judgment`) stay NULL until answered.
    """

    __tablename__ = "repeat_assignment"
    __table_args__ = (
        UniqueConstraint("annotator_id", "project_id", "item_id"),
        UniqueConstraint("annotator_id", "public_id"),
        Index(
            "ix_repeat_assignment_live_lease",
            "annotator_id",
            "project_id",
            unique=True,
            sqlite_where=text("state = 'leased'"),
            postgresql_where=text("state = 'leased'"),
        ),
        Index("ix_repeat_assignment_project_id_state", "project_id", "state"),
        Index("ix_repeat_assignment_judgment_id", "judgment_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("item.id", ondelete="CASCADE"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"))
    judgment_id: Mapped[int] = mapped_column(ForeignKey("judgment.id", ondelete="CASCADE"))
    public_id: Mapped[int]
    shown_order: Mapped[list[int]] = mapped_column(PortableJSON)
    state: Mapped[AssignmentState] = mapped_column(_str_enum(AssignmentState, "repeat_assignment_state"))
    leased_until: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]
    skip_reason: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any] | None] = mapped_column(PortableJSON)
    verdict: Mapped[str | None] = mapped_column(String(120))
    time_spent_ms: Mapped[int | None]
    answer_public_id: Mapped[int | None]
