"""What a project asks of its annotators: rubric, label taxonomy, strength, routing, caps.

Stored in `project.settings`; validated here, on the way in, and read back typed.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from app.errors import InvalidInput, Problem
from preference_store.models import ProjectKind

_NAME = re.compile(r"^[\w][\w .\-/()]{0,63}$", re.UNICODE)
STRENGTHS = ("slightly", "clearly", "much")
"""Preference strength, weakest first."""
MIN_RANKED, MAX_RANKED = 3, 9
MAX_RUBRIC_RESPONSES = 9
MAX_REPEAT_RATE = 0.2


class Scale(BaseModel):
    """A criterion's scale: Likert `min..max`, `binary` (no/yes), or categorical `labels`."""

    model_config = ConfigDict(extra="forbid")

    min: int | None = Field(default=None, ge=0, le=100)
    max: int | None = Field(default=None, ge=1, le=100)
    binary: bool = False
    labels: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        default=None, min_length=2, max_length=12
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        kinds = [self.min is not None or self.max is not None, self.binary, self.labels is not None]
        if sum(kinds) != 1:
            raise ValueError("a scale is one of {min, max}, {binary: true} or {labels: [...]}")
        if kinds[0] and (self.min is None or self.max is None or not self.min < self.max or self.max - self.min > 10):
            raise ValueError("a Likert scale needs min < max, at most 11 points")
        if self.labels is not None and len(set(self.labels)) != len(self.labels):
            raise ValueError("scale labels must be distinct")
        return self

    def values(self) -> list[int | str | bool]:
        """Every value a score may take, in display order."""
        if self.labels is not None:
            return list(self.labels)
        if self.binary:
            return [False, True]
        return list(range(self.min or 0, (self.max or 0) + 1))


class Criterion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    description: str = Field(default="", max_length=2000)
    scale: Scale
    anchors: dict[str, str] = Field(
        default_factory=dict, description="Anchor text per scale value, e.g. {'1': 'unusable', '5': 'perfect'}."
    )
    required: bool = True

    @model_validator(mode="after")
    def _anchors_on_scale(self) -> Self:
        if not _NAME.match(self.name):
            raise ValueError(f"criterion name '{self.name}' must be letters, digits, spaces or . - / ( )")
        known = {scale_key(value) for value in self.scale.values()}
        unknown = sorted(set(self.anchors) - known)
        if unknown:
            raise ValueError(f"anchors for values not on the scale of '{self.name}': {', '.join(unknown)}")
        return self


class PolicyLabel(BaseModel):
    """A label annotators may put on a response, e.g. 'gambling' with severities minor/severe."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    description: str = Field(default="", max_length=1000)
    severities: list[Annotated[str, Field(min_length=1, max_length=32)]] = Field(default_factory=list, max_length=6)
    violates_policy: bool = True
    sensitive: bool = False

    @model_validator(mode="after")
    def _valid_name(self) -> Self:
        if not _NAME.match(self.name) or ":" in self.name:
            raise ValueError(f"label name '{self.name}' must be letters, digits, spaces or . - / ( )")
        return self

    def values(self) -> list[str]:
        """The label values an annotator can pick: 'name' or 'name:severity'."""
        return [f"{self.name}:{severity}" for severity in self.severities] or [self.name]


class GoldOptions(BaseModel):
    """Gold items: how often they are mixed in, and what an annotator's accuracy on them decides."""

    model_config = ConfigDict(extra="forbid")

    mix_rate: float = Field(default=0.0, ge=0.0, le=0.5, description="Share of tasks that are gold items (0 = off).")
    requires_qualification: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=10, description="Slugs of qualification projects to pass first."
    )
    pass_score: float = Field(default=0.8, ge=0.0, le=1.0, description="Gold accuracy that passes a qualification.")
    min_gold: int = Field(default=10, ge=1, le=1000, description="Gold answers a qualification needs.")
    floor: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Gold accuracy below which an annotator is paused."
    )
    window: int = Field(default=20, ge=1, le=1000, description="How many recent gold answers the floor looks at.")


class ArbitrationOptions(BaseModel):
    """When a fully judged item goes to the arbitration queue, and whether it first gets more annotators."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool | None = Field(default=None, description="Open cases for disputed items (default: overlap >= 2).")
    min_agreement: float = Field(
        default=0.6, ge=0.0, le=1.0, description="Modal verdict's share of judgments below which an item is disputed."
    )
    extra_annotators: int = Field(
        default=0, ge=0, le=5, description="Adaptive overlap: annotators added once to a disputed item before a case."
    )
    max_overlap: int | None = Field(default=None, ge=1, le=50, description="Adaptive overlap never goes beyond this.")

    def active(self, overlap: int) -> bool:
        """Whether cases open in a project with this overlap."""
        return self.enabled if self.enabled is not None else overlap >= 2


class QualityOptions(BaseModel):
    """Scorecard flags (docs/quality-reports.md) and repeated items (docs/repeats.md); shares are 0..1."""

    model_config = ConfigDict(extra="forbid")

    low_agreement: float = Field(
        default=0.5, ge=0.0, le=1.0, description="Flag agreement with the aggregate below this."
    )
    position_bias_p: float = Field(
        default=0.01, gt=0.0, le=0.5, description="Flag a left-side share whose Holm-adjusted p-value is below this."
    )
    too_fast_seconds: float = Field(
        default=3.0, ge=0.0, le=600.0, description="A judgment made in less active time than this is too fast."
    )
    too_fast_share: float = Field(default=0.25, ge=0.0, le=1.0, description="Flag more than this share too fast.")
    straight_lining_share: float = Field(
        default=0.5, ge=0.0, le=1.0, description="Flag more than this share of rubric score sets with one score."
    )
    min_judgments: int = Field(
        default=10, ge=1, le=100_000, description="Agreement, speed and straight-lining flags need this many judgments."
    )
    low_gold_accuracy: float = Field(default=0.7, ge=0.0, le=1.0, description="Flag gold accuracy below this.")
    min_gold_judgments: int = Field(
        default=5, ge=1, le=10_000, description="The gold accuracy flag needs this many judged gold items."
    )
    repeat_rate: float = Field(
        default=0.0,
        ge=0.0,
        le=MAX_REPEAT_RATE,
        description="Pairwise: share of tasks that re-serve one of the annotator's own judged items, sides swapped.",
    )
    repeat_after: int = Field(
        default=20, ge=0, le=10_000, description="A repeat is of an item judged at least this many judgments ago."
    )
    low_self_consistency: float = Field(
        default=0.7, ge=0.0, le=1.0, description="Flag self-consistency on repeated items below this."
    )
    min_repeats: int = Field(
        default=5, ge=1, le=10_000, description="The self-consistency flag needs this many answered repeats."
    )


class ProjectOptions(BaseModel):
    """Per-project annotation settings (all optional; defaults make a plain pairwise task)."""

    model_config = ConfigDict(extra="forbid")

    rubric: list[Criterion] = Field(default_factory=list, max_length=20)
    rubric_overall_choice: bool = Field(
        default=False, description="Rubric projects with two responses also ask which is better overall."
    )
    strength: bool = Field(default=False, description="Pairwise: ask how much better (slightly, clearly, much).")
    taxonomy: list[PolicyLabel] = Field(default_factory=list, max_length=40)
    rationale: Literal["optional", "required", "off"] = "optional"
    rewrite: bool = Field(default=False, description="Pairwise: annotators may rewrite the better response.")
    route_by_language: bool = Field(
        default=False, description="Serve annotators only items in their languages (items without one go to all)."
    )
    daily_cap: int | None = Field(default=None, ge=1, le=10_000, description="Judgments per annotator per UTC day.")
    break_after_minutes: int | None = Field(default=50, ge=5, le=480)
    sensitive_categories: list[str] = Field(
        default_factory=list, description="Items whose metadata category is one of these render blurred."
    )
    revisable_judgments: int = Field(default=5, ge=0, le=50, description="How many recent judgments may be changed.")
    arbitration: ArbitrationOptions = Field(default_factory=ArbitrationOptions)
    purpose: Literal["production", "training", "qualification"] = Field(
        default="production", description="Training and qualification projects show gold feedback after each answer."
    )
    gold: GoldOptions = Field(default_factory=GoldOptions)
    quality: QualityOptions = Field(default_factory=QualityOptions)

    @model_validator(mode="after")
    def _distinct_names(self) -> Self:
        for what, names in (("criterion", [c.name for c in self.rubric]), ("label", [t.name for t in self.taxonomy])):
            if len(set(names)) != len(names):
                raise ValueError(f"{what} names must be distinct")
        return self

    def label_values(self) -> set[str]:
        return {value for label in self.taxonomy for value in label.values()}

    def criterion(self, name: str) -> Criterion | None:
        return next((criterion for criterion in self.rubric if criterion.name == name), None)


def scale_key(value: int | str | bool) -> str:
    """How a scale value is written as a JSON key or a form value."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def parse_options(values: dict[str, Any], *, kind: ProjectKind) -> ProjectOptions:
    """Validate options for a project kind; every problem is named by its field."""
    try:
        options = ProjectOptions.model_validate(values)
    except ValidationError as error:
        problems = [
            Problem(detail["msg"].removeprefix("Value error, "), field=".".join(str(p) for p in detail["loc"]) or None)
            for detail in error.errors()
        ]
        raise InvalidInput("invalid_options", "The project options are not valid.", problems=problems) from error
    if kind is ProjectKind.RUBRIC and not options.rubric:
        raise InvalidInput("rubric_required", "A rubric project needs at least one criterion.", field="rubric")
    if kind is not ProjectKind.RUBRIC and options.rubric:
        raise InvalidInput("rubric_not_allowed", "Only rubric projects have a rubric.", field="rubric")
    if kind is not ProjectKind.PAIRWISE and options.quality.repeat_rate > 0:
        raise InvalidInput(
            "repeats_pairwise_only",
            "Repeated items (self-consistency) are served in pairwise projects only.",
            field="quality.repeat_rate",
        )
    return options


def options_of(settings: dict[str, Any]) -> ProjectOptions:
    """Read back options stored by `parse_options` (trusted: they were validated on the way in)."""
    return ProjectOptions.model_validate(settings)


def response_count_range(kind: ProjectKind) -> tuple[int, int]:
    """How many responses an item of this kind of project may have."""
    if kind is ProjectKind.PAIRWISE:
        return 2, 2
    if kind is ProjectKind.RANKING:
        return MIN_RANKED, MAX_RANKED
    return 1, MAX_RUBRIC_RESPONSES
