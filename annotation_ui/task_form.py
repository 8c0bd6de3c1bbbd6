"""The judgment form shared by the annotation and calibration workbenches: fields in, 422 state out."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request

from annotation_ui import i18n
from annotation_ui.forms import ranking_text
from annotation_ui.messages import problem_message
from annotation_ui.rendering import STATIC_DIR
from app.errors import PrefstackError, Problem
from app.services.project_options import scale_key


async def _form_fields(request: Request) -> list[tuple[str, str]]:
    # Field names are dynamic (`labels.B`, `score.A.accuracy`), so the form is read whole;
    # Starlette parses it once per request (the CSRF check has usually read it already).
    form = await request.form()
    return [(name, value) for name, value in form.multi_items() if isinstance(value, str)]


FormFields = Annotated[list[tuple[str, str]], Depends(_form_fields)]
NOT_VERDICT_FIELDS = frozenset({"csrf_token", "time_spent_ms"})


@dataclass(frozen=True, slots=True)
class FormState:
    """What a re-rendered form shows: the message, the invalid fields and the values sent."""

    error: str | None = None
    problems: list[str] = field(default_factory=list)
    messages: dict[str, str] = field(default_factory=dict)
    values: dict[str, list[str]] = field(default_factory=dict)


def form_state(request: Request, error: PrefstackError, fields: list[tuple[str, str]]) -> FormState:
    """The 422 state: every invalid field by its service name and its form field name."""
    with i18n.activate(i18n.request_language(request)):
        return _translated_form_state(error, fields)


def _translated_form_state(error: PrefstackError, fields: list[tuple[str, str]]) -> FormState:
    problems: list[str] = []
    messages: dict[str, str] = {}
    found = error.problems or [Problem(error.message, field=error.field)]
    for problem in found:
        if problem.field is None:
            continue
        message = problem_message(problem, code=error.code)
        names = {problem.field, _form_name(problem.field)}
        for name in names:
            if name not in problems:
                problems.append(name)
            messages.setdefault(name, message)
    summary = problem_message(found[0], code=error.code)
    return FormState(error=summary, problems=problems, messages=messages, values=_values_of(fields))


def _form_name(service_field: str) -> str:
    """`scores.A.accuracy` (as services name it) -> `score.A.accuracy` (the form field)."""
    return "score." + service_field.removeprefix("scores.") if service_field.startswith("scores.") else service_field


def _values_of(fields: list[tuple[str, str]]) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for name, value in fields:
        if name not in NOT_VERDICT_FIELDS:
            values.setdefault(name, []).append(value)
    return values


def values_of_verdict(shown: dict[str, Any]) -> dict[str, list[str]]:
    """The form values that submit a stored verdict (in shown labels) again."""
    values: dict[str, list[str]] = {}
    for name in ("choice", "strength", "rationale", "rewrite"):
        if shown.get(name):
            values[name] = [str(shown[name])]
    for label, picked in (shown.get("labels") or {}).items():
        values[f"labels.{label}"] = list(picked)
    for label, scores in (shown.get("scores") or {}).items():
        for criterion, value in scores.items():
            values[f"score.{label}.{criterion}"] = [scale_key(value)]
    if shown.get("ranking"):
        values["ranking"] = [ranking_text(shown["ranking"])]
    if shown.get("all_bad"):
        values["all_bad"] = ["1"]
    return values


@functools.cache
def kind_assets(kind: str) -> tuple[str, ...]:
    """The kind's own script and style sheet, when they exist (pairwise has none)."""
    return tuple(name for name in (f"{kind}.js", "kinds.css") if kind != "pairwise" and (STATIC_DIR / name).exists())


def single(fields: list[tuple[str, str]], name: str) -> str | None:
    """The first value sent for `name`, if any."""
    return next((value for key, value in fields if key == name), None)
