"""OpenAI chat rows: messages plus candidate completions in the shapes the API and its tools write."""

from __future__ import annotations

from app.import_formats import RowError, SourceRow
from app.import_formats.openai_chat import convert

USER = {"role": "user", "content": "Is this spam?"}


def test_completions_of_several_shapes_become_responses_with_models() -> None:
    row = convert(
        1,
        {
            "id": "chat-1",
            "model": "row-model",
            "messages": [{"role": "developer", "content": "Be brief."}, USER],
            "completions": [
                "Yes.",
                {"role": "assistant", "content": "No.", "model": "m-b"},
                {
                    "message": {
                        "role": "assistant",
                        "content": [{"type": "text", "text": "May"}, {"type": "text", "text": "be."}],
                    }
                },
                {"text": "Unclear.", "model": "legacy"},
            ],
            "metadata": {"language": "en"},
        },
    )
    assert isinstance(row, SourceRow)
    assert row.item == {
        "external_id": "chat-1",
        "messages": [{"role": "system", "content": "Be brief."}, USER],
        "responses": [
            {"content": "Yes.", "model": "row-model"},
            {"content": "No.", "model": "m-b"},
            {"content": "Maybe.", "model": "row-model"},
            {"content": "Unclear.", "model": "legacy"},
        ],
        "metadata": {"language": "en"},
    }
    assert row.verdicts == ()


def test_chat_completions_choices_are_read() -> None:
    row = convert(
        2, {"messages": [USER], "choices": [{"index": 0, "message": {"role": "assistant", "content": "Yes."}}]}
    )
    assert isinstance(row, SourceRow)
    assert row.item["responses"] == [{"content": "Yes.", "model": ""}]
    assert row.item["external_id"].startswith("openai-")


def test_final_assistant_turn_is_the_single_response() -> None:
    row = convert(3, {"messages": [USER, {"role": "assistant", "content": "Yes."}]})
    assert isinstance(row, SourceRow)
    assert row.item["messages"] == [USER] and row.item["responses"] == [{"content": "Yes.", "model": ""}]


def test_preference_fine_tuning_rows_carry_the_preferred_output_as_a_verdict() -> None:
    row = convert(
        4,
        {
            "input": {"messages": [USER]},
            "preferred_output": [{"role": "assistant", "content": "Yes, it sells pills."}],
            "non_preferred_output": [{"role": "assistant", "content": "No."}],
        },
    )
    assert isinstance(row, SourceRow)
    assert [r["content"] for r in row.item["responses"]] == ["Yes, it sells pills.", "No."]
    assert [(v.source, v.kind, v.payload) for v in row.verdicts] == [("openai-preference", "choice", {"choice": 0})]


def test_bad_rows_name_their_fields() -> None:
    row = convert(5, {"messages": "hi", "completions": [{"role": "user", "content": "x"}, 3, {"image": "x"}]})
    assert isinstance(row, RowError)
    assert [(p.row, p.field, p.message) for p in row.problems] == [
        (5, "messages", "must be a non-empty list of {role, content}"),
        (5, "completions[0].role", "a candidate must be an assistant message"),
        (5, "completions[1]", "expected a string or an object, got a number"),
        (5, "completions[2]", "has no 'content', 'message' or 'text'"),
    ]
    image = convert(
        6, {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}], "choices": ["a"]}
    )
    assert isinstance(image, RowError) and image.problems[0].field == "messages[0].content[0]"
    neither = convert(7, {"messages": [USER]})
    assert isinstance(neither, RowError) and neither.problems[0].field == "messages"
