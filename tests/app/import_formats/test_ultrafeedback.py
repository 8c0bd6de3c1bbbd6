"""UltraFeedback rows: completions become responses, their ratings one judge verdict."""

from __future__ import annotations

from app.import_formats import RowError, SourceRow
from app.import_formats.ultrafeedback import convert


def _completion(model: str, text: str, rating: object, overall: object = 7.0) -> dict[str, object]:
    return {
        "model": model,
        "response": text,
        "annotations": {
            "helpfulness": {"Rating": rating, "Rationale": "..."},
            "honesty": [{"Rating": "5", "Rationale": "..."}],
            "truthfulness": {"Type": ["0"], "Rating": "N/A"},
        },
        "overall_score": overall,
    }


def test_completions_and_ratings() -> None:
    row = convert(
        1,
        {
            "source": "evol_instruct",
            "instruction": "Summarise the text.",
            "completions": [_completion("llama-2", "A summary.", "4"), _completion("gpt-4", "Better summary.", 5, 8.5)],
        },
    )
    assert isinstance(row, SourceRow)
    assert row.item["prompt"] == "Summarise the text."
    assert row.item["responses"] == [
        {"content": "A summary.", "model": "llama-2"},
        {"content": "Better summary.", "model": "gpt-4"},
    ]
    assert row.item["metadata"] == {"source": "evol_instruct"}
    (verdict,) = row.verdicts
    assert (verdict.source, verdict.judge, verdict.kind) == ("ultrafeedback", "gpt-4", "scores")
    assert verdict.payload == {
        "scores": {
            "0": {"helpfulness": 4.0, "honesty": 5.0, "truthfulness": None, "overall_score": 7.0},
            "1": {"helpfulness": 5.0, "honesty": 5.0, "truthfulness": None, "overall_score": 8.5},
        }
    }


def test_bad_ratings_and_missing_instruction_are_refused() -> None:
    row = convert(3, {"instruction": " ", "completions": [_completion("m", "t", "great", overall="high"), "x"]})
    assert isinstance(row, RowError)
    assert [(p.field, p.message) for p in row.problems] == [
        ("instruction", "must be a non-empty string"),
        ("completions[0].annotations.helpfulness", "Rating must be a number or 'N/A'"),
        ("completions[0].overall_score", "must be a number"),
        ("completions[1]", "expected an object, got a string"),
    ]
