import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evaluations.strategies import (
    COT_MARKER,
    DEFAULT_SYSTEM_PROMPT,
    Example,
    RenderContext,
    extract,
    pick_examples,
    render,
)

LABELS = ("positive", "negative", "neutral")
CLASSIFY = RenderContext(task_type="classification", labels=LABELS)
LABEL_INSTRUCTION = "Answer with exactly one of these labels: positive, negative, neutral."

CHAT = [
    {"role": "system", "content": "You are a pirate."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Arr"},
    {"role": "user", "content": "Is this good?"},
]


# --- render -----------------------------------------------------------------------------------------


def test_plain_leaves_the_input_untouched():
    assert render("plain", "Hello", CLASSIFY) == [{"role": "user", "content": "Hello"}]
    assert render("plain", CHAT, CLASSIFY) == CHAT


def test_zero_shot_adds_the_label_instruction_to_the_last_user_message():
    messages = render("zero-shot", CHAT, CLASSIFY)

    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[:3] == CHAT[:3]
    assert messages[3]["content"] == f"Is this good?\n\n{LABEL_INSTRUCTION}"


def test_zero_shot_does_not_mutate_the_callers_messages():
    original = [dict(m) for m in CHAT]
    render("zero-shot", CHAT, CLASSIFY)
    assert original == CHAT


def test_zero_shot_generation_without_labels_adds_nothing():
    assert render("zero-shot", "Write a haiku", RenderContext()) == [
        {"role": "user", "content": "Write a haiku"}
    ]


def test_zero_shot_json_task_asks_for_json_only():
    messages = render("zero-shot", "Give me a point", RenderContext(task_type="json"))
    assert messages[-1]["content"].endswith("Answer with valid JSON only.")


def test_instruction_becomes_a_user_turn_when_the_input_has_no_user_message():
    messages = render("zero-shot", [{"role": "system", "content": "Be brief."}], CLASSIFY)
    assert messages[-1] == {"role": "user", "content": LABEL_INSTRUCTION}


def test_system_puts_a_system_message_first_and_drops_the_cases_own_system_turn():
    ctx = RenderContext(task_type="classification", labels=LABELS, params={"system_prompt": "Be a critic."})

    messages = render("system", CHAT, ctx)

    assert messages[0] == {"role": "system", "content": f"Be a critic. {LABEL_INSTRUCTION}"}
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert all(m["content"] != "You are a pirate." for m in messages)
    assert messages[1:] == CHAT[1:]


def test_system_uses_the_default_prompt_when_none_is_given():
    messages = render("system", "Hello", RenderContext())
    assert messages == [
        {"role": "system", "content": DEFAULT_SYSTEM_PROMPT},
        {"role": "user", "content": "Hello"},
    ]


def test_few_shot_alternates_user_and_assistant_example_turns_then_the_case():
    examples = (
        Example(input="great film", output="positive"),
        Example(input=[{"role": "system", "content": "ignored"}, {"role": "user", "content": "awful"}],
                output="negative"),
    )  # fmt: skip
    ctx = RenderContext(task_type="classification", labels=LABELS, examples=examples)

    messages = render("few-shot", "it was ok", ctx)

    assert messages == [
        {"role": "system", "content": LABEL_INSTRUCTION},
        {"role": "user", "content": "great film"},
        {"role": "assistant", "content": "positive"},
        {"role": "user", "content": "awful"},
        {"role": "assistant", "content": "negative"},
        {"role": "user", "content": "it was ok"},
    ]


def test_few_shot_without_instruction_starts_with_the_first_example():
    ctx = RenderContext(examples=(Example(input="2+2", output="4"),))
    assert render("few-shot", "3+3", ctx) == [
        {"role": "user", "content": "2+2"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "3+3"},
    ]


def test_cot_asks_for_step_by_step_reasoning_and_the_answer_marker():
    messages = render("cot", "Is this good?", CLASSIFY)

    content = messages[-1]["content"]
    assert content.startswith("Is this good?\n\n" + LABEL_INSTRUCTION)
    assert "step by step" in content
    assert f"starting with '{COT_MARKER}'" in content


def test_cot_uses_a_custom_marker():
    messages = render("cot", "Q", RenderContext(params={"marker": "FINAL:"}))
    assert "starting with 'FINAL:'" in messages[-1]["content"]


def test_structured_asks_for_a_json_object_with_an_answer_field():
    content = render("structured", "Is this good?", CLASSIFY)[-1]["content"]
    assert LABEL_INSTRUCTION in content
    assert '{"answer": "<your answer>"}' in content


def test_structured_json_task_asks_for_an_unquoted_json_answer():
    content = render("structured", "A point", RenderContext(task_type="json"))[-1]["content"]
    assert '{"answer": <your JSON answer>}' in content


@pytest.mark.parametrize("kind", ["zero-shot", "cot", "structured"])
def test_chat_inputs_keep_their_turns(kind):
    messages = render(kind, CHAT, CLASSIFY)
    assert messages[:3] == CHAT[:3]
    assert messages[3]["role"] == "user"
    assert messages[3]["content"].startswith("Is this good?")


def test_unknown_kind_raises():
    with pytest.raises(ValueError, match="unknown strategy kind"):
        render("telepathy", "Hello", RenderContext())


# --- extract ----------------------------------------------------------------------------------------


def test_cot_extract_takes_the_text_after_the_last_marker_case_insensitively():
    output = "Answer: maybe\nLet me reconsider.\nanswer: **negative**\n"
    assert extract("cot", output) == "negative"


def test_cot_extract_honours_a_custom_marker():
    assert extract("cot", "thinking...\nfinal: 42", {"marker": "FINAL:"}) == "42"


def test_cot_extract_falls_back_to_the_last_non_empty_line():
    assert extract("cot", "Reasoning here.\n  positive  \n\n   \n") == "positive"


def test_cot_extract_of_empty_output_is_empty():
    assert extract("cot", "   \n  ") == ""


def test_structured_extract_reads_the_answer_from_the_first_json_object_amid_prose():
    output = 'Sure! {not json} Here it is: {"answer": "positive"} and also {"answer": "negative"}'
    assert extract("structured", output) == "positive"


def test_structured_extract_json_dumps_non_string_answers():
    assert extract("structured", '```json\n{"answer": {"y": 2, "x": 1}}\n```') == '{"x": 1, "y": 2}'
    assert extract("structured", '{"answer": 3}') == "3"
    assert json.loads(extract("structured", '{"answer": [true, null]}')) == [True, None]


@pytest.mark.parametrize("output", ["just text", '{"result": "positive"}', "[1, 2]"])
def test_structured_extract_falls_back_to_the_raw_text(output):
    assert extract("structured", f"  {output} ") == output


@pytest.mark.parametrize("kind", ["plain", "zero-shot", "few-shot", "system"])
def test_other_kinds_extract_the_stripped_output(kind):
    assert extract(kind, "  Answer: positive \n") == "Answer: positive"


@given(st.text())
def test_extract_never_raises(text):
    for kind in ("cot", "structured", "plain"):
        assert isinstance(extract(kind, text), str)


# --- pick_examples ----------------------------------------------------------------------------------

POOL = [Example(input=f"input {i}", output=f"output {i}") for i in range(50)]


def test_pick_examples_is_reproducible_for_the_same_seed():
    assert pick_examples(POOL, 5, seed="case-1") == pick_examples(POOL, 5, seed="case-1")


def test_pick_examples_differs_across_seeds():
    picks = {pick_examples(POOL, 5, seed=f"case-{i}") for i in range(10)}
    assert len(picks) > 1


def test_pick_examples_never_returns_the_cases_own_input():
    for i in range(20):
        picked = pick_examples(POOL, 49, seed=f"case-{i}", exclude_input="input 7")
        assert len(picked) == 49
        assert all(ex.input != "input 7" for ex in picked)


def test_pick_examples_excludes_a_chat_input_equal_to_the_case():
    chat = [{"role": "user", "content": "hi"}]
    pool = [Example(input=chat, output="hello"), Example(input="other", output="x")]
    assert pick_examples(pool, 5, seed="s", exclude_input=[{"role": "user", "content": "hi"}]) == (pool[1],)


def test_pick_examples_caps_at_the_pool_size():
    picked = pick_examples(POOL[:3], 10, seed="s")
    assert sorted(ex.input for ex in picked) == ["input 0", "input 1", "input 2"]


def test_pick_examples_returns_distinct_examples():
    picked = pick_examples(POOL, 20, seed="s")
    assert len(set(picked)) == 20


@pytest.mark.parametrize("k", [0, -1])
def test_pick_examples_with_no_k_gives_nothing(k):
    assert pick_examples(POOL, k, seed="s") == ()


def test_pick_examples_from_an_empty_pool_gives_nothing():
    assert pick_examples([], 3, seed="s") == ()
