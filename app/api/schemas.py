"""Request and response bodies of the JSON API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ProjectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slug: str = Field(examples=["th-livestream-safety"])
    name: str
    kind: Literal["pairwise", "rubric", "ranking"] = "pairwise"
    overlap: int = Field(default=1, ge=1, le=50, description="Judgments wanted per item.")
    guidelines: str = Field(default="", description="Markdown shown to annotators.")
    lease_seconds: int = Field(default=1800, ge=30, description="How long an item stays with one annotator.")


class ProjectOut(BaseModel):
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


class ShownResponseOut(BaseModel):
    label: str
    content: str


class ItemOut(BaseModel):
    external_id: str
    messages: list[dict[str, Any]]
    responses: list[ShownResponseOut]


class TaskOut(BaseModel):
    assignment_id: int
    item: ItemOut
    leased_until: str
    guidelines_version: int


class PairwiseJudgmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    choice: Literal["A", "B", "tie", "both_bad"]
    rationale: str | None = Field(default=None, max_length=10_000)
    time_spent_ms: int | None = Field(default=None, ge=0, le=24 * 3600 * 1000)


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
