"""Request and response bodies of the JSON API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.services.project_options import ProjectOptions

Strength = Literal["slightly", "clearly", "much"]
ScoreValue = int | bool | str


class ProjectIn(ProjectOptions):
    """A new project: its kind and queue settings, plus the options of ProjectOptions."""

    model_config = ConfigDict(extra="forbid")

    slug: str = Field(examples=["th-livestream-safety"])
    name: str
    kind: Literal["pairwise", "rubric", "ranking"] = "pairwise"
    overlap: int = Field(default=1, ge=1, le=50, description="Judgments wanted per item.")
    guidelines: str = Field(default="", description="Markdown shown to annotators.")
    lease_seconds: int = Field(default=1800, ge=30, description="How long an item stays with one annotator.")


class ProjectOut(ProjectOptions):
    slug: str
    name: str
    kind: str
    overlap: int
    guidelines_version: int
    lease_seconds: int


class MembersIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    emails: list[str] = Field(min_length=1)


class MembersOut(BaseModel):
    added: int


class ImportOut(BaseModel):
    created: int
    unchanged: int


class VerdictsOut(BaseModel):
    stored: int
    """External verdicts written (one an item already had from the same source and judge is replaced)."""
    items: int


class ProjectOptionsIn(BaseModel):
    """Options to change; those left out keep their values (see ProjectOptions)."""

    model_config = ConfigDict(extra="allow")


class GuidelinesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(max_length=200_000, description="Markdown.")
    note: str = Field(default="", max_length=2000, description="What changed, for the version history.")


class GuidelinesVersionOut(BaseModel):
    version: int
    text: str
    note: str
    created_at: datetime


class PriorityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    external_ids: list[str] = Field(min_length=1, max_length=10_000)
    priority: int = Field(ge=-1000, le=1000, description="Higher is served first; 0 is the default.")


class PriorityOut(BaseModel):
    updated: int


class ShownResponseOut(BaseModel):
    label: str
    content: str
    sensitive: bool = False


class ItemOut(BaseModel):
    external_id: str
    messages: list[dict[str, Any]]
    responses: list[ShownResponseOut]
    language: str | None = None
    sensitive: bool = False


class TaskOut(BaseModel):
    assignment_id: int
    kind: Literal["pairwise", "rubric", "ranking"]
    item: ItemOut
    leased_until: str
    guidelines_version: int


class JudgmentIn(BaseModel):
    """A verdict in the labels shown (A, B, ...). Which fields apply depends on the project kind:
    pairwise: choice, strength, labels, rewrite; rubric: scores (and choice when the project
    asks for an overall choice); ranking: ranking (best first, ties grouped) and all_bad."""

    model_config = ConfigDict(extra="forbid")

    choice: Literal["A", "B", "tie", "both_bad"] | None = None
    strength: Strength | None = None
    labels: dict[str, list[str]] = Field(default_factory=dict, examples=[{"B": ["gambling:severe"]}])
    rationale: str | None = Field(default=None, max_length=10_000)
    rewrite: str | None = Field(
        default=None, max_length=100_000, description="An improved version of the better response."
    )
    scores: dict[str, dict[str, ScoreValue]] = Field(
        default_factory=dict, examples=[{"A": {"helpfulness": 4, "safe": True}, "B": {"helpfulness": 2, "safe": True}}]
    )
    ranking: list[list[str]] = Field(default_factory=list, examples=[[["B"], ["A", "C"]]])
    all_bad: bool = False
    time_spent_ms: int | None = Field(default=None, ge=0, le=24 * 3600 * 1000)


class SkipIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=500)


class RevisionOut(BaseModel):
    revision: int
    verdict: dict[str, Any]
    guidelines_version: int
    made_at: datetime


class MyJudgmentOut(BaseModel):
    judgment_id: int
    project_slug: str
    external_id: str
    verdict: dict[str, Any]
    time_spent_ms: int | None
    guidelines_version: int
    revision: int
    created_at: datetime
    revised_at: datetime | None
    revisable: bool
    history: list[RevisionOut]


class ProgressOut(BaseModel):
    done_today: int
    left_in_queue: int = Field(description="Items the caller could still be served, counted up to 1,000.")
    more_in_queue: bool = Field(description="More than left_in_queue are left: the count stopped at 1,000.")
    streak_days: int
    sensitive_today: int
    daily_cap: int | None
    break_after_minutes: int | None


class JudgmentOut(BaseModel):
    judgment_id: int
    assignment_id: int
    created: bool


class ErrorBody(BaseModel):
    code: str
    message: str
    field: str | None = None
    row: int | None = None
    problems: list[dict[str, Any]] | None = None


class ErrorOut(BaseModel):
    error: ErrorBody
