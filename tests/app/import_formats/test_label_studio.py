"""Label Studio exports: pairwise and ranker tasks with their annotations as verdicts."""

from __future__ import annotations

from app.import_formats import RowError, SourceRow
from app.import_formats.label_studio import convert


def test_pairwise_task_with_annotations() -> None:
    task = {
        "id": 17,
        "data": {"prompt": "Is this spam?", "answer1": "Yes.", "answer2": "No.", "language": "en"},
        "annotations": [
            {
                "completed_by": {"email": "a@example.org"},
                "result": [{"type": "pairwise", "value": {"selected": "right"}}],
            },
            {"completed_by": 3, "was_cancelled": True, "result": [{"type": "pairwise", "value": {"selected": "left"}}]},
            {"completed_by": 4, "result": [{"type": "textarea", "value": {"text": ["why"]}}]},
        ],
    }
    row = convert(1, task)
    assert isinstance(row, SourceRow)
    assert row.item == {
        "external_id": "label-studio-17",
        "responses": [{"content": "Yes."}, {"content": "No."}],
        "prompt": "Is this spam?",
        "metadata": {"language": "en"},
    }
    assert [(v.judge, v.kind, v.payload) for v in row.verdicts] == [
        ("label-studio:a@example.org", "choice", {"choice": 1})
    ]


def test_ranker_task_ranks_by_item_id() -> None:
    task = {
        "id": 5,
        "data": {
            "external_id": "rank-1",
            "prompt": "Best summary?",
            "items": [{"id": "a", "body": "One."}, {"id": "b", "body": "Two."}, {"id": "c", "body": "Three."}],
        },
        "annotations": [
            {"completed_by": 1, "result": [{"type": "ranker", "value": {"ranker": {"rank": ["c", "a", "b"]}}}]}
        ],
    }
    row = convert(2, task)
    assert isinstance(row, SourceRow)
    assert row.item["external_id"] == "rank-1"
    assert [r["content"] for r in row.item["responses"]] == ["One.", "Two.", "Three."]
    assert [(v.kind, v.payload) for v in row.verdicts] == [("ranking", {"ranking": [[2], [0], [1]]})]


def test_bad_tasks_name_the_field() -> None:
    incomplete = {
        "id": 6,
        "data": {"prompt": "q", "items": [{"id": "a", "body": "x"}, {"id": "b", "body": "y"}]},
        "annotations": [{"result": [{"value": {"ranker": {"rank": ["a"]}}}, {"value": {"selected": "left"}}]}],
    }
    row = convert(3, incomplete)
    assert isinstance(row, RowError)
    assert [(p.field, p.message) for p in row.problems] == [
        ("annotations[0].result[0].value.ranker", "must rank every item of data.items exactly once"),
        ("annotations[0].result[1].value.selected", "selected must be 'left' or 'right' on a pairwise task"),
    ]
    no_data = convert(4, {"id": 1, "data": {"answer1": "a", "answer2": "b"}})
    assert isinstance(no_data, RowError)
    assert [p.field for p in no_data.problems] == ["data.prompt"]
