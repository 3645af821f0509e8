"""OpenAI Evals platform definitions (GET /v1/evals/{id}) with their items: the grader mapping, the
skipped graders in the version's notes, the input rule, errors naming file, line and field, and the
mapped graders scored through ftvp's assertion registry."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from evaluations.importers import SourceFile, SuiteFormatError, SuiteValidationError, read_sources
from evaluations.scoring.assertions import Context, combine, evaluate, validate_assertion

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "openai-evals-platform"
EVAL = "capitals.eval.json"
ITEMS = "capitals.items.jsonl"
RUN = "capitals.run.json"


def fixture(name: str) -> SourceFile:
    return SourceFile(name, (FIXTURES / name).read_bytes())


def definition(**changes) -> dict:
    data = json.loads((FIXTURES / EVAL).read_text())
    data.update(changes)
    return data


def as_file(name: str, data: object) -> SourceFile:
    return SourceFile(name, json.dumps(data).encode())


def jsonl(name: str, *rows: object) -> SourceFile:
    return SourceFile(name, "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows).encode())


def errors_of(exc: SuiteFormatError) -> list[str]:
    found = exc.errors if isinstance(exc, SuiteValidationError) else [exc]
    return [e.describe() for e in found]


# -- the mapping -----------------------------------------------------------------------------------------


def test_a_definition_with_every_grader_kind_imports_with_its_items():
    result = read_sources([fixture(EVAL), fixture(ITEMS)])
    assert result.format == "openai-evals-platform"
    assert [c["key"] for c in result.cases] == ["fr", "it", "au", "case-0005"]
    first = result.cases[0]
    assert first["input"] == "What is the capital of France?"
    assert first["expected"] == "Paris"  # the first string check's {{item.answer}}
    assert first["metadata"]["item"]["country"] == "France"
    assert result.cases[1]["metadata"]["sample"] == {"output_text": "Rome"}
    assert result.cases[2]["input"] == "What is the capital of Australia?"  # a bare item object
    assert result.cases[3]["line"] == 5
    by_metric = {a["metric"]: a for a in first["assertions"]}
    assert by_metric["exact answer"] == {"type": "equals", "value": "Paris", "metric": "exact answer"}
    assert by_metric["no refusal"]["type"] == "not-equals"
    assert by_metric["no refusal"]["value"] == "I cannot help with that."
    assert by_metric["mentions the answer"] == {
        "type": "contains",
        "value": "Paris",
        "metric": "mentions the answer",
    }
    assert by_metric["mentions the country"]["type"] == "icontains"
    assert by_metric["mentions the country"]["value"] == "France"
    # fuzzy_match 0.8 on "Paris" (5 characters): at most round(0.2 x 5) = 1 edit
    assert by_metric["close spelling"] == {
        "type": "levenshtein",
        "value": "Paris",
        "threshold": 1.0,
        "metric": "close spelling",
    }
    assert by_metric["same meaning"]["type"] == "similar" and by_metric["same meaning"]["threshold"] == 0.85
    assert by_metric["bleu overlap"]["type"] == "bleu"
    assert by_metric["rouge overlap"]["type"] == "rouge-n"
    tone = by_metric["tone"]
    assert tone["type"] == "llm-rubric" and tone["threshold"] == 0.5
    assert "question: What is the capital of France?" in tone["value"]
    assert "[the answer to grade]" in tone["value"] and "{{" not in tone["value"]
    assert "'polite', 'neutral', 'rude'" in tone["value"]
    assert "passing labels ('polite', 'neutral')" in tone["value"]
    correctness = by_metric["correctness"]
    assert correctness["type"] == "llm-rubric"
    assert correctness["threshold"] == pytest.approx((5.5 - 1) / 6)  # pass_threshold on the 1-7 range
    assert "names Paris as the capital of France" in correctness["value"]
    assert "from 1 to 7" in correctness["value"]
    assert by_metric["short reply"]["type"] == "python"
    assert "def grade(sample, item)" in by_metric["short reply"]["value"]
    # Each case resolves the templates with its own item.
    canberra = {a["metric"]: a for a in result.cases[2]["assertions"]}
    assert canberra["exact answer"]["value"] == "Canberra"
    assert canberra["close spelling"]["threshold"] == 2.0  # round(0.2 x 8)
    for case in result.cases:
        assert len(case["assertions"]) == 11
        assert all(validate_assertion(a) is None for a in case["assertions"])


def test_skipped_graders_and_the_judged_ones_are_reported_in_the_version_notes():
    notes = "\n".join(read_sources([fixture(EVAL), fixture(ITEMS)]).extras.notes)
    assert "the input is the items' 'question' field" in notes
    assert "'bleu' has no BLEU scorer in ftvp: kept, and skipped when scoring" in notes
    assert "'rouge-n' has no ROUGE scorer in ftvp: kept, and skipped when scoring" in notes
    assert "'python' runs Python code: kept, and skipped when scoring" in notes
    assert "testing_criteria[10] 'short reply' (python): ftvp never runs uploaded code" in notes
    assert "testing_criteria[7] 'rouge overlap' (rouge_l): ftvp has no rouge_l scorer" in notes
    assert "'tone' (label_model): graded by ftvp's judge endpoint" in notes
    assert "not by o4-mini-2025-04-16; skipped while no judge is configured" in notes
    assert "'close spelling' (fuzzy_match): scored by ftvp's 'levenshtein'" in notes
    assert "imported from the OpenAI eval 'Capitals, spelling and tone'" in notes


def test_a_zip_of_the_definition_and_its_items_imports_the_same():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"export/{EVAL}", (FIXTURES / EVAL).read_bytes())
        archive.writestr(f"export/{ITEMS}", (FIXTURES / ITEMS).read_bytes())
    result = read_sources([SourceFile("capitals.zip", buffer.getvalue())])
    plain = read_sources([fixture(EVAL), fixture(ITEMS)])
    assert result.format == "openai-evals-platform"
    assert [c["assertions"] for c in result.cases] == [c["assertions"] for c in plain.cases]


def test_a_run_with_file_content_items_brings_its_items_and_its_prompt_template():
    result = read_sources([fixture(EVAL), fixture(RUN)])
    assert [c["key"] for c in result.cases] == ["jp", "ke"]
    assert result.extras.prompts == [
        {"name": "gpt-4.1 baseline", "template": "Answer with the city's name only.\n\n{{item.question}}"}
    ]
    assert result.cases[0]["metadata"]["vars"]["item.question"] == "What is the capital of Japan?"
    both = read_sources([fixture(EVAL), fixture(ITEMS), fixture(RUN)])
    assert len(both.cases) == 6
    assert both.cases[0]["metadata"]["source_file"] == ITEMS
    assert both.cases[-1]["key"] == "ke"


def test_the_input_field_can_be_named_by_the_option_or_the_eval_metadata():
    named = read_sources([fixture(EVAL), fixture(ITEMS)], input_field="country")
    assert named.cases[0]["input"] == "France"
    data = definition(metadata={"ftvp_input_field": "country"})
    from_metadata = read_sources([as_file(EVAL, data), fixture(ITEMS)])
    assert from_metadata.cases[0]["input"] == "France"


def test_without_a_conventional_name_the_input_is_the_field_the_model_graders_read():
    data = definition(
        data_source_config={"type": "custom", "schema": {"type": "object"}},
        testing_criteria=[
            {
                "type": "string_check",
                "name": "label",
                "input": "{{sample.output_text}}",
                "reference": "{{item.label}}",
                "operation": "eq",
            },
            {
                "type": "label_model",
                "name": "sentiment",
                "model": "gpt-4o-mini",
                "input": [
                    {"role": "user", "content": "Review: {{item.review}}\nLabel: {{sample.output_text}}"}
                ],
                "labels": ["right", "wrong"],
                "passing_labels": ["right"],
            },
        ],
    )
    items = jsonl("reviews.jsonl", {"item": {"label": "positive", "review": "Loved it."}})
    case = read_sources([as_file("reviews.eval.json", data), items]).cases[0]
    assert case["input"] == "Loved it." and case["expected"] == "positive"
    # Without a model grader: the first text field no grader compares with.
    data["testing_criteria"] = data["testing_criteria"][:1]
    case = read_sources([as_file("reviews.eval.json", data), items]).cases[0]
    assert case["input"] == "Loved it."


def test_graders_ftvp_cannot_run_as_written_are_kept_and_skipped():
    data = definition(
        testing_criteria=[
            {
                "type": "string_check",
                "name": "two item fields",
                "input": "{{item.answer}}",
                "reference": "{{item.country}}",
                "operation": "eq",
            },
            {
                "type": "string_check",
                "name": "answer inside reference",
                "input": "{{item.answer}}",
                "reference": "{{sample.output_text}}",
                "operation": "like",
            },
            {
                "type": "string_check",
                "name": "flipped eq",
                "input": "{{item.answer}}",
                "reference": "{{sample.output_text}}",
                "operation": "eq",
            },
            {"type": "multi", "name": "combined", "graders": {}, "calculate_output": "a"},
        ]
    )
    result = read_sources([as_file(EVAL, data), fixture(ITEMS)])
    types = [a["type"] for a in result.cases[0]["assertions"]]
    assert types == ["openai-grader", "openai-grader", "equals", "openai-grader"]
    assert result.cases[0]["assertions"][3]["value"]["type"] == "multi"
    notes = "\n".join(result.extras.notes)
    assert "'openai-grader' is an OpenAI Evals grader ftvp has no equivalent for" in notes
    assert "'combined': the 'multi' grader has no ftvp equivalent" in notes
    verdict = evaluate(result.cases[0]["assertions"][0], Context(output="Paris"))
    assert verdict.skipped


# -- graders ftvp runs score as expected -----------------------------------------------------------------


def _by_metric(case_key: str = "fr") -> dict[str, dict]:
    cases = read_sources([fixture(EVAL), fixture(ITEMS)]).cases
    case = next(c for c in cases if c["key"] == case_key)
    return {a["metric"]: a for a in case["assertions"]}


@pytest.mark.parametrize(
    ("metric", "output", "passed"),
    [
        ("exact answer", "Paris", True),
        ("exact answer", "paris", False),
        ("no refusal", "Paris", True),
        ("no refusal", "I cannot help with that.", False),
        ("mentions the answer", "The capital is Paris.", True),
        ("mentions the answer", "The capital is PARIS.", False),  # like: case-sensitive
        ("mentions the country", "FRANCE's capital is Paris", True),  # ilike: case-insensitive
        ("mentions the country", "It is Paris", False),
        ("close spelling", "Pariss", True),  # one edit
        ("close spelling", "Parsi", False),  # two edits
    ],
)
def test_mapped_string_and_fuzzy_graders_score_as_expected(metric, output, passed):
    assertion = _by_metric()[metric]
    verdict = evaluate(assertion, Context(output=output, expected=("Paris",)))
    assert verdict.passed is passed and not verdict.skipped, verdict.reason


def test_mapped_cosine_similarity_uses_the_pass_threshold():
    assertion = _by_metric()["same meaning"]
    near = {"Paris": np.array([1.0, 0.0]), "It's Paris": np.array([0.9, np.sqrt(1 - 0.81)])}
    far = {"Paris": np.array([1.0, 0.0]), "Lyon": np.array([0.6, 0.8])}
    assert evaluate(assertion, Context(output="It's Paris", vectors=near)).passed  # 0.90 >= 0.85
    assert not evaluate(assertion, Context(output="Lyon", vectors=far)).passed  # 0.60 < 0.85


def test_mapped_model_graders_go_to_the_judge_with_their_thresholds():
    graders = _by_metric()
    asked = []

    def judge(score):
        def grade(rubric, output, expected):
            asked.append(rubric)
            return score, "graded"

        return grade

    tone = graders["tone"]
    assert evaluate(tone, Context(output="Paris.", judge=judge(1.0))).passed
    assert not evaluate(tone, Context(output="Paris, obviously.", judge=judge(0.0))).passed
    correctness = graders["correctness"]  # passes at 5.5 on 1-7, i.e. 0.75 rescaled
    assert evaluate(correctness, Context(output="Paris", judge=judge(5 / 6))).passed  # 6 of 7
    assert not evaluate(correctness, Context(output="Lyon", judge=judge(4 / 6))).passed  # 5 of 7
    assert "Classify the tone" in asked[0] and "Rate from 1 to 7" in asked[2]
    assert evaluate(tone, Context(output="Paris")).skipped  # no judge configured


def test_skipped_graders_count_in_neither_the_score_nor_the_pass():
    graders = _by_metric()
    kept = [graders[m] for m in ("exact answer", "bleu overlap", "rouge overlap", "short reply")]
    verdicts = [evaluate(a, Context(output="Paris")) for a in kept]
    assert [v.skipped for v in verdicts] == [False, True, True, True]
    total = combine(kept, verdicts)
    assert total.passed and total.score == 1.0
    wrong = [evaluate(a, Context(output="Lyon")) for a in kept]
    assert not combine(kept, wrong).passed


# -- errors ------------------------------------------------------------------------------------------------


def _fails(files: list[SourceFile], **kwargs) -> list[str]:
    with pytest.raises(SuiteFormatError) as info:
        read_sources(files, **kwargs)
    return errors_of(info.value)


def test_a_bad_grader_names_the_file_and_the_field():
    data = definition()
    data["testing_criteria"][0]["operation"] = "startswith"
    data["testing_criteria"][4]["pass_threshold"] = 1.5
    data["testing_criteria"][8]["passing_labels"] = ["kind"]
    data["testing_criteria"][9]["range"] = [7, 1]
    del data["testing_criteria"][10]["source"]
    got = _fails([as_file(EVAL, data), fixture(ITEMS)])
    assert got == [
        f"{EVAL}, field 'testing_criteria[0].operation': is 'startswith'; use one of: eq, ne, like, ilike",
        f"{EVAL}, field 'testing_criteria[4].pass_threshold': is 1.5; give a number between 0 and 1",
        f"{EVAL}, field 'testing_criteria[8].passing_labels': 'kind' is not one of the labels "
        "['polite', 'neutral', 'rude']",
        f"{EVAL}, field 'testing_criteria[9].range': is [7, 1]; give low below high",
        f"{EVAL}, field 'testing_criteria[10].source': is missing; give the grader's Python source",
    ]


def test_a_bad_items_line_names_the_file_and_the_line():
    items = jsonl(
        "items.jsonl",
        {"item": {"question": "Capital of Peru?", "answer": "Lima", "country": "Peru"}},
        '{"item": {"question": "Capital of Bolivia?"',
        '{"item": "Sucre"}',
        "[1, 2]",
    )
    got = _fails([fixture(EVAL), items])
    assert got[0].startswith("items.jsonl, line 2: is not valid JSON")
    assert got[1:] == [
        "items.jsonl, line 3, field 'item': is a string; give the item's fields as an object",
        'items.jsonl, line 4: is a JSON list; write each item as {"item": {...}}',
    ]


def test_an_item_missing_a_template_field_names_the_line_and_the_field():
    items = jsonl(
        "items.jsonl",
        {"item": {"question": "Capital of Peru?", "answer": "Lima", "country": "Peru"}},
        {"item": {"question": "Capital of Chile?", "answer": "Santiago"}},
        {"item": {"answer": "Quito", "country": "Ecuador"}},
    )
    got = _fails([fixture(EVAL), items])
    assert got == [
        "items.jsonl, line 2, field 'item.country': is missing; "
        "testing_criteria[3] 'mentions the country' uses it",
        "items.jsonl, line 3, field 'item.question': is missing; every item needs the prompt field",
    ]


def test_a_definition_without_items_or_criteria_says_what_to_upload():
    (alone,) = _fails([fixture(EVAL)])
    assert alone.startswith(f"{EVAL}: was uploaded without its items; upload the items JSON Lines file")
    (empty,) = _fails([as_file(EVAL, definition(testing_criteria=[])), fixture(ITEMS)])
    assert empty == f"{EVAL}, field 'testing_criteria': has no testing criteria; give at least one grader"
    (forced,) = _fails([fixture(ITEMS)], fmt="openai-evals-platform")
    assert forced.startswith(f"{ITEMS}: is not the eval definition")
    (bad_json,) = _fails([SourceFile(EVAL, b'{"object": "eval",\n "name": }')])
    assert bad_json.startswith(f"{EVAL}, line 2: is not valid JSON")


def test_the_format_can_be_forced_on_the_definition():
    result = read_sources([fixture(EVAL), fixture(ITEMS)], fmt="openai-evals-platform")
    assert result.format == "openai-evals-platform" and len(result.cases) == 4


def test_the_command_imports_a_definition_through_the_database_with_its_input_field(db, tmp_path):
    from django.core.management import call_command

    from evaluations.models import Suite

    folder = Path(__file__).resolve().parents[1] / "fixtures" / "openai-evals-platform"
    out = io.StringIO()
    call_command(
        "import_suite", str(folder / "capitals.eval.json"), str(folder / "capitals.items.jsonl"),
        "--name", "capitals-evals", "--input-field", "country", stdout=out,
    )  # fmt: skip
    version = Suite.objects.get(name="capitals-evals").latest_version()
    assert version.source_format == "openai-evals-platform"
    inputs = sorted(str(c.input) for c in version.cases.all())
    assert "France" in inputs and not any(i.startswith("What is the capital") for i in inputs)
    assert any(a["type"] == "equals" for c in version.cases.all() for a in c.assertions)
