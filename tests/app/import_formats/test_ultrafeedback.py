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
    verdict, overall = row.verdicts
    assert (verdict.source, verdict.judge, verdict.kind) == ("ultrafeedback", "gpt-4", "scores")
    assert (overall.source, overall.judge, overall.kind, overall.payload) == (
        "ultrafeedback",
        "gpt-4/overall",
        "choice",
        {"choice": 1},
    )
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


def test_overall_scores_of_more_than_two_completions_become_a_ranking_with_ties() -> None:
    completions = [_completion("a", "A.", 3, 6.0), _completion("b", "B.", 4, 9.0), _completion("c", "C.", 4, 6.0)]
    row = convert(1, {"instruction": "Rank.", "completions": completions, "annotator": "judge-x"})
    assert isinstance(row, SourceRow)
    overall = row.verdicts[1]
    assert (overall.judge, overall.kind, overall.payload) == ("judge-x/overall", "ranking", {"ranking": [[1], [0, 2]]})


def test_no_overall_verdict_when_a_completion_has_no_overall_score() -> None:
    completions = [_completion("a", "A.", 3, 6.0), _completion("b", "B.", 4, "N/A")]
    row = convert(1, {"instruction": "Pick.", "completions": completions})
    assert isinstance(row, SourceRow)
    assert [verdict.kind for verdict in row.verdicts] == ["scores"]
