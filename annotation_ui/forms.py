"""Reading the task form's fields into a verdict, for every task kind.

Field names, shared by the templates and the scripts that fill them in:
- `choice`: A, B, tie or both_bad; `strength`: slightly, clearly or much;
- `labels.<shown label>` (repeated): policy labels of a response, e.g. `labels.B=gambling:severe`;
- `rationale`, `rewrite`: free text;
- `score.<shown label>.<criterion>`: a rubric score as the scale writes it (`4`, `yes`, `partly`);
- `ranking`: best first, groups separated by `;`, ties within a group by `,` (`B;A,C`);
- `all_bad`: `1` when every ranked response is bad;
- `time_spent_ms`: active time on the task.
"""

from __future__ import annotations

from collections.abc import Iterable

from app.services.verdicts import VerdictInput

_LABELS = "labels."
_SCORE = "score."


def verdict_from_form(fields: Iterable[tuple[str, str]]) -> VerdictInput:
    """Build a VerdictInput from submitted form fields (name, value) in order."""
    single: dict[str, str] = {}
    labels: dict[str, list[str]] = {}
    scores: dict[str, dict[str, str]] = {}
    for name, value in fields:
        if name.startswith(_LABELS):
            if value:
                labels.setdefault(name.removeprefix(_LABELS), []).append(value)
        elif name.startswith(_SCORE):
            label, _, criterion = name.removeprefix(_SCORE).partition(".")
            if criterion and value != "":
                scores.setdefault(label, {})[criterion] = value
        else:
            single[name] = value
    return VerdictInput(
        choice=single.get("choice") or None,
        strength=single.get("strength") or None,
        labels=labels,
        rationale=single.get("rationale") or None,
        rewrite=single.get("rewrite") or None,
        scores=dict(scores),
        ranking=parse_ranking(single.get("ranking", "")),
        all_bad=single.get("all_bad") in ("1", "true", "on"),
    )


def parse_ranking(text: str) -> list[list[str]]:
    """`B;A,C` -> [["B"], ["A", "C"]]."""
    return [
        [label.strip() for label in group.split(",") if label.strip()] for group in text.split(";") if group.strip()
    ]


def ranking_text(ranking: list[list[str]]) -> str:
    """The inverse of parse_ranking, to refill the form."""
    return ";".join(",".join(group) for group in ranking)


def time_spent(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None
