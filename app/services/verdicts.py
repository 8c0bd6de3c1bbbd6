"""Judgments of each task kind: checked against the project, stored by response position.

Annotators (and the API) speak in shown labels, A, B, C...; the order differs per
assignment, so everything stored is keyed by the response's stored position, and read
back in labels through the same assignment's `shown_order`.
"""

from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass, field
from typing import Any

import orjson

from app.errors import InvalidInput, Problem
from app.services.project_options import STRENGTHS, ProjectOptions, scale_key
from preference_store.models import ProjectKind

PAIRWISE_CHOICES = ("A", "B", "tie", "both_bad")
MAX_RATIONALE_CHARS = 10_000
MAX_REWRITE_CHARS = 100_000


@dataclass(frozen=True, slots=True)
class VerdictInput:
    """What an annotator submitted, in shown labels; which fields apply depends on the kind."""

    choice: str | None = None
    strength: str | None = None
    labels: dict[str, list[str]] = field(default_factory=dict)
    rationale: str | None = None
    rewrite: str | None = None
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)
    ranking: list[list[str]] = field(default_factory=list)
    all_bad: bool = False


@dataclass(frozen=True, slots=True)
class Verdict:
    payload: dict[str, Any]
    key: str
    """The decision in a canonical short form: equal keys mean the annotators agreed."""


def shown_labels(count: int) -> list[str]:
    return list(string.ascii_uppercase[:count])


def build_verdict(
    submitted: VerdictInput, *, kind: ProjectKind, options: ProjectOptions, shown_order: list[int]
) -> Verdict:
    """Check a submission against the project and turn it into the stored payload."""
    position_of = dict(zip(shown_labels(len(shown_order)), shown_order, strict=True))
    problems: list[Problem] = []
    rationale = _rationale(submitted.rationale, options, problems)
    if kind is ProjectKind.PAIRWISE:
        verdict = _pairwise(submitted, options, position_of, problems)
    elif kind is ProjectKind.RUBRIC:
        verdict = _rubric(submitted, options, position_of, problems)
    else:
        verdict = _ranking(submitted, position_of, problems)
    _forbid_foreign_fields(submitted, kind, options, problems)
    if problems:
        first = problems[0]
        raise InvalidInput("invalid_judgment", first.message, field=first.field, problems=problems)
    verdict.payload["rationale"] = rationale
    return verdict


def _rationale(text: str | None, options: ProjectOptions, problems: list[Problem]) -> str | None:
    rationale = (text or "").strip() or None
    if rationale is None and options.rationale == "required":
        problems.append(Problem("This project asks for a rationale.", field="rationale"))
    if rationale is not None and options.rationale == "off":
        problems.append(Problem("This project does not take rationales.", field="rationale"))
    if rationale is not None and len(rationale) > MAX_RATIONALE_CHARS:
        problems.append(Problem(f"rationale is limited to {MAX_RATIONALE_CHARS} characters.", field="rationale"))
    return rationale


def _preferred(choice: str | None, position_of: dict[str, int], problems: list[Problem]) -> int | None:
    if choice not in PAIRWISE_CHOICES:
        problems.append(Problem("choice must be one of A, B, tie, both_bad.", field="choice"))
        return None
    return position_of[choice] if choice in ("A", "B") else None


def _pairwise(
    submitted: VerdictInput, options: ProjectOptions, position_of: dict[str, int], problems: list[Problem]
) -> Verdict:
    preferred = _preferred(submitted.choice, position_of, problems)
    strength = submitted.strength or None
    if preferred is None and strength is not None:
        problems.append(Problem("strength applies only when A or B is better.", field="strength"))
    elif preferred is not None and options.strength and strength is None:
        problems.append(Problem("Say how much better: slightly, clearly or much.", field="strength"))
    elif strength is not None and not options.strength:
        problems.append(Problem("This project does not ask for strength.", field="strength"))
    elif strength is not None and strength not in STRENGTHS:
        problems.append(Problem(f"strength must be one of {', '.join(STRENGTHS)}.", field="strength"))
    rewrite = (submitted.rewrite or "").strip() or None
    if rewrite is not None:
        if not options.rewrite:
            problems.append(Problem("This project does not take rewrites.", field="rewrite"))
        elif preferred is None:
            problems.append(Problem("A rewrite improves the better response: choose A or B.", field="rewrite"))
        elif len(rewrite) > MAX_REWRITE_CHARS:
            problems.append(Problem(f"rewrite is limited to {MAX_REWRITE_CHARS} characters.", field="rewrite"))
    payload: dict[str, Any] = {
        "choice": submitted.choice,
        "preferred_position": preferred,
        "strength": strength,
        "labels": _labels(submitted.labels, options, position_of, problems),
        "rewrite": {"position": preferred, "content": rewrite} if rewrite and preferred is not None else None,
    }
    key = f"p{preferred}" if preferred is not None else str(submitted.choice)
    return Verdict(payload, key)


def _labels(
    labels: dict[str, list[str]], options: ProjectOptions, position_of: dict[str, int], problems: list[Problem]
) -> dict[str, list[str]]:
    known = options.label_values()
    stored: dict[str, list[str]] = {}
    for label, values in labels.items():
        if label not in position_of:
            problems.append(Problem(f"No response {label} in this task.", field=f"labels.{label}"))
            continue
        unknown = [value for value in values if value not in known]
        if unknown:
            problems.append(Problem(f"Unknown label {', '.join(unknown)}.", field=f"labels.{label}"))
        if values:
            stored[str(position_of[label])] = sorted(set(values))
    return stored


def _rubric(
    submitted: VerdictInput, options: ProjectOptions, position_of: dict[str, int], problems: list[Problem]
) -> Verdict:
    scores: dict[str, dict[str, Any]] = {}
    for label in submitted.scores:
        if label not in position_of:
            problems.append(Problem(f"No response {label} in this task.", field=f"scores.{label}"))
    for label, position in position_of.items():
        given = submitted.scores.get(label, {})
        for name in given:
            if options.criterion(name) is None:
                problems.append(Problem(f"No criterion '{name}' in this rubric.", field=f"scores.{label}.{name}"))
        stored: dict[str, Any] = {}
        for criterion in options.rubric:
            where = f"scores.{label}.{criterion.name}"
            raw = given.get(criterion.name)
            if raw is None or raw == "":
                if criterion.required:
                    problems.append(Problem(f"Score {criterion.name} for response {label}.", field=where))
                continue
            value = _scale_value(raw, criterion.scale.values())
            if value is None:
                allowed = ", ".join(scale_key(v) for v in criterion.scale.values())
                problems.append(Problem(f"{criterion.name} takes one of {allowed}.", field=where))
                continue
            stored[criterion.name] = value
        scores[str(position)] = stored
    payload: dict[str, Any] = {"scores": scores}
    overall = ""
    if options.rubric_overall_choice and len(position_of) == 2:
        preferred = _preferred(submitted.choice, position_of, problems)
        payload |= {"choice": submitted.choice, "preferred_position": preferred}
        overall = f"p{preferred}" if preferred is not None else str(submitted.choice)
    elif submitted.choice is not None and options.rubric_overall_choice:
        problems.append(Problem("An overall choice applies only to tasks with two responses.", field="choice"))
    digest = hashlib.blake2b(orjson.dumps(scores, option=orjson.OPT_SORT_KEYS), digest_size=8).hexdigest()
    return Verdict(payload, f"{overall}|s:{digest}" if overall else f"s:{digest}")


def _scale_value(raw: Any, allowed: list[int | str | bool]) -> int | str | bool | None:
    for value in allowed:
        if raw == value and type(raw) is type(value):
            return value
        if isinstance(raw, str) and raw == scale_key(value):
            return value
    return None


def _ranking(submitted: VerdictInput, position_of: dict[str, int], problems: list[Problem]) -> Verdict:
    ranking = [list(group) for group in submitted.ranking if group]
    flat = [label for group in ranking for label in group]
    if ranking or not submitted.all_bad:
        missing = sorted(set(position_of) - set(flat))
        unknown = sorted(set(flat) - set(position_of))
        repeated = sorted({label for label in flat if flat.count(label) > 1})
        if missing:
            problems.append(Problem(f"Rank every response; missing {', '.join(missing)}.", field="ranking"))
        if unknown:
            problems.append(Problem(f"No response {', '.join(unknown)} in this task.", field="ranking"))
        if repeated:
            problems.append(Problem(f"{', '.join(repeated)} ranked twice.", field="ranking"))
    if problems:
        return Verdict({}, "")
    positions = [sorted(position_of[label] for label in group) for group in ranking]
    key = ">".join("=".join(str(p) for p in group) for group in positions)
    if submitted.all_bad:
        key = f"all_bad:{key}" if key else "all_bad"
    return Verdict({"ranking": positions, "all_bad": submitted.all_bad}, key)


def _forbid_foreign_fields(
    submitted: VerdictInput, kind: ProjectKind, options: ProjectOptions, problems: list[Problem]
) -> None:
    used = {
        "choice": submitted.choice is not None,
        "strength": submitted.strength is not None,
        "labels": bool(submitted.labels),
        "rewrite": submitted.rewrite is not None,
        "scores": bool(submitted.scores),
        "ranking": bool(submitted.ranking) or submitted.all_bad,
    }
    allowed = {
        ProjectKind.PAIRWISE: {"choice", "strength", "labels", "rewrite"},
        ProjectKind.RUBRIC: {"scores", "choice"} if options.rubric_overall_choice else {"scores"},
        ProjectKind.RANKING: {"ranking"},
    }[kind]
    for name, present in used.items():
        if present and name not in allowed:
            problems.append(Problem(f"{name} does not apply to a {kind.value} project.", field=name))


def shown_payload(payload: dict[str, Any], shown_order: list[int]) -> dict[str, Any]:
    """A stored payload with positions turned back into the labels this assignment showed."""
    label_of = {position: label for label, position in zip(shown_labels(len(shown_order)), shown_order, strict=True)}
    shown: dict[str, Any] = {key: value for key, value in payload.items() if key not in ("preferred_position",)}
    if "labels" in payload:
        shown["labels"] = {label_of[int(pos)]: values for pos, values in payload["labels"].items()}
    if payload.get("rewrite"):
        shown["rewrite"] = payload["rewrite"]["content"]
    if "scores" in payload:
        shown["scores"] = {label_of[int(pos)]: values for pos, values in payload["scores"].items()}
    if "ranking" in payload:
        shown["ranking"] = [[label_of[pos] for pos in group] for group in payload["ranking"]]
    return shown


def verdict_input_of(shown: dict[str, Any]) -> VerdictInput:
    """The inverse of `shown_payload`: what to submit to store the same verdict again."""
    return VerdictInput(
        choice=shown.get("choice"),
        strength=shown.get("strength"),
        labels=dict(shown.get("labels") or {}),
        rationale=shown.get("rationale"),
        rewrite=shown.get("rewrite"),
        scores=dict(shown.get("scores") or {}),
        ranking=list(shown.get("ranking") or []),
        all_bad=bool(shown.get("all_bad", False)),
    )
