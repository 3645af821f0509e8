"""Downloads of a run: results as CSV and JSONL, passing outputs as fine-tuning JSONL."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from evaluations.models import Case, Result, Run
from evaluations.selectors import exports
from tests.factories import CaseFactory, EndpointFactory, SuiteVersionFactory
from tests.runs import ArmSpec, finished_run

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
SCORES = {
    "assertions": [{"type": "equals", "score": 1.0, "passed": True, "reason": "=matched"}],
    "reason": "all passed",
}


@pytest.fixture
def run(db) -> Run:
    """3 test cases x 2 arms x 2 samples = 12 results, with formula-like texts in them."""
    version = SuiteVersionFactory(suite__name='Support: "tickets"/v2')
    CaseFactory(version=version, key="c0", position=0, input='=HYPERLINK("http://x")', expected="a0",
                tags=["math", "edge"])  # fmt: skip
    CaseFactory(version=version, key="c1", position=1, input=MESSAGES, expected=["Paris", "paris"])
    CaseFactory(version=version, key="c2", position=2, input="plain", expected=["only"])
    CaseFactory(version=version, key="x0", position=3, input="train me", expected="t", split="train")
    a = EndpointFactory(name="ep-a")
    b = EndpointFactory(name="ep-b")
    run = finished_run(
        version,
        [ArmSpec(a, "zero-shot", [1.0, 0.0, 1.0]), ArmSpec(b, "plain", [1.0, 1.0, 0.0], errors={2})],
    )
    for result in list(Result.objects.filter(arm__run=run)):  # a second sample of each
        result.pk, result.sample = None, 1
        result.save()
    for case in Case.objects.filter(version=version):
        Result.objects.filter(case=case).update(prompt=[{"role": "user", "content": f"ask {case.key}"}])
    arm_a, arm_b = run.arms.order_by("position")
    c0 = Result.objects.filter(case__key="c0")
    c0.filter(arm=arm_a, sample=0).update(output="=1+1", answer="-2", scores=SCORES)
    c0.filter(arm=arm_b).update(output="out 0 (b)")
    # Marked passed although it failed with an error: still never a fine-tuning example.
    Result.objects.filter(arm=arm_b, case__key="c2", sample=0).update(passed=True, output="partial")
    return run


def _body(response) -> str:
    return b"".join(response.streaming_content).decode()


def _csv(auth_client, run) -> list[dict]:
    response = auth_client.get(reverse("evaluations:run-export-csv", args=[run.pk]))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(_body(response))))
    return rows


def _key(row) -> tuple:
    return (row["case_key"], row["endpoint"], int(row["sample"]))


# --- pure cell logic --------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "=cmd|' /C calc'!A0"])
def test_formula_like_text_is_neutralised(text):
    assert exports.neutralise(text) == "'" + text
    assert exports.csv_cell(text) == "'" + text


@pytest.mark.parametrize("text", ["", "plain", "a=b", " =1", "'quoted", "1+1"])
def test_other_text_is_kept(text):
    assert exports.csv_cell(text) == text


def test_numbers_booleans_and_structures_as_cells():
    assert exports.csv_cell(-1.5) == -1.5 and exports.csv_cell(-3) == -3 and exports.csv_cell(0.0) == 0.0
    assert exports.csv_cell(True) == "true" and exports.csv_cell(False) == "false"
    assert exports.csv_cell(None) == ""
    assert json.loads(exports.csv_cell(MESSAGES)) == MESSAGES
    assert exports.csv_cell(["-a", "=b"]) == '["-a", "=b"]'


def test_expected_value():
    assert exports.expected_value(None) is None and exports.expected_value([]) is None
    assert exports.expected_value(["one"]) == "one" and exports.expected_value("one") == "one"
    assert exports.expected_value(["a", "b"]) == ["a", "b"]


def test_finetune_lines_drop_empty_and_duplicate_records():
    prompt = [{"role": "user", "content": "q"}]
    lines = list(
        exports.finetune_lines([(prompt, "a"), (prompt, "a"), (prompt, " "), ([], "a"), (prompt, "b")])
    )
    assert [json.loads(line)["messages"][-1]["content"] for line in lines] == ["a", "b"]


# --- CSV ------------------------------------------------------------------------------------------


def test_csv_has_one_row_per_case_arm_and_sample(auth_client, run):
    rows = _csv(auth_client, run)
    assert len(rows) == 3 * 2 * 2
    assert list(rows[0]) == list(exports.COLUMNS)
    assert sorted(map(_key, rows)) == sorted(
        (c, e, s) for c in ("c0", "c1", "c2") for e in ("ep-a", "ep-b") for s in (0, 1)
    )
    assert [r["case_key"] for r in rows] == ["c0"] * 4 + ["c1"] * 4 + ["c2"] * 4  # in case order
    by_key = {_key(r): r for r in rows}
    first = by_key[("c0", "ep-a", 0)]
    assert first["run_id"] == str(run.pk) and first["suite"] == 'Support: "tickets"/v2'
    assert first["suite_version"] == str(run.suite_version.number) and first["split"] == "test"
    assert first["strategy"] == "zero-shot" and first["tags"] == "math, edge"
    assert first["arm_id"] == str(run.arms.get(position=0).pk)
    assert first["expected"] == "a0" and first["passed"] == "true" and first["cached"] == "false"
    assert json.loads(first["scores"]) == SCORES
    assert by_key[("c1", "ep-a", 1)]["expected"] == '["Paris", "paris"]'
    assert json.loads(by_key[("c1", "ep-b", 0)]["input"]) == MESSAGES
    assert by_key[("c2", "ep-a", 0)]["expected"] == "only"
    failed = by_key[("c2", "ep-b", 1)]
    assert failed["error"] == "boom" and failed["passed"] == "false" and failed["output"] == ""
    assert failed["prompt_tokens"] == "" and failed["completion_tokens"] == ""
    assert by_key[("c1", "ep-a", 0)]["score"] == "0.0" and by_key[("c1", "ep-a", 0)]["passed"] == "false"


def test_csv_neutralises_formulas_but_not_numbers(auth_client, run):
    response = auth_client.get(reverse("evaluations:run-export-csv", args=[run.pk]))
    text = _body(response)
    rows = {_key(r): r for r in csv.DictReader(io.StringIO(text))}
    row = rows[("c0", "ep-a", 0)]
    assert row["input"] == '\'=HYPERLINK("http://x")'
    assert row["output"] == "'=1+1" and row["answer"] == "'-2"
    assert row["score"] == "1.0" and row["prompt_tokens"] == "100" and row["completion_tokens"] == "5"
    assert row["latency_ms"] == "100.0" and float(row["cost"]) > 0 and not row["cost"].startswith("'")
    # The raw line: numbers unquoted, so a spreadsheet reads them as numbers.
    line = next(line for line in text.splitlines() if ",'=1+1," in line)
    assert ",1.0,true," in line and ",100,5,100.0," in line
    for r in rows.values():
        for column, value in r.items():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), (column, value)


def test_csv_filename_is_safe(auth_client, run):
    response = auth_client.get(reverse("evaluations:run-export-csv", args=[run.pk]))
    disposition = response["Content-Disposition"]
    match = re.fullmatch(r'attachment; filename="([A-Za-z0-9_.-]+)"', disposition)
    assert match, disposition
    assert match.group(1) == f"Support---tickets--v2-v{run.suite_version.number}-run{run.pk}-results.csv"


def test_csv_export_queries_do_not_grow_with_the_results(auth_client, db, django_assert_max_num_queries):
    def make(n_cases: int) -> Run:
        version = SuiteVersionFactory()
        for i in range(n_cases):
            CaseFactory(version=version, key=f"k{i}", position=i)
        specs = [ArmSpec(EndpointFactory(), name, [1.0] * n_cases) for name in ("zero-shot", "plain")]
        return finished_run(version, specs)

    counts = []
    for run in (make(2), make(60)):
        # 8: the rows' reads, plus two for the role check (the user's and their groups' permissions).
        with CaptureQueriesContext(connection) as ctx, django_assert_max_num_queries(8):
            response = auth_client.get(reverse("evaluations:run-export-csv", args=[run.pk]))
            rows = list(csv.DictReader(io.StringIO(_body(response))))
        assert len(rows) == run.arms.count() * run.suite_version.cases.count()
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1], counts


# --- JSONL ----------------------------------------------------------------------------------------


def test_jsonl_keeps_json_values(auth_client, run):
    response = auth_client.get(reverse("evaluations:run-export-jsonl", args=[run.pk]))
    assert response.status_code == 200 and response["Content-Type"].startswith("application/jsonl")
    assert response["Content-Disposition"].endswith(f'-run{run.pk}-results.jsonl"')
    records = [json.loads(line) for line in _body(response).splitlines()]
    assert len(records) == 12 and all(list(r) == list(exports.COLUMNS) for r in records)
    by_key = {(r["case_key"], r["endpoint"], r["sample"]): r for r in records}
    first = by_key[("c0", "ep-a", 0)]
    # No spreadsheet here: the text is exported as it is.
    assert first["input"] == '=HYPERLINK("http://x")' and first["output"] == "=1+1"
    assert first["scores"] == SCORES and first["tags"] == ["math", "edge"]
    assert first["score"] == 1.0 and first["passed"] is True and first["cached"] is False
    assert first["prompt_tokens"] == 100 and first["latency_ms"] == 100.0 and isinstance(first["cost"], float)
    assert by_key[("c1", "ep-b", 1)]["input"] == MESSAGES
    assert by_key[("c1", "ep-b", 1)]["expected"] == ["Paris", "paris"]
    assert by_key[("c2", "ep-a", 0)]["expected"] == "only"
    failed = by_key[("c2", "ep-b", 0)]
    assert failed["error"] == "boom" and failed["prompt_tokens"] is None and failed["scores"] == {}


# --- fine-tuning JSONL ----------------------------------------------------------------------------


def _finetune(auth_client, run, **params):
    response = auth_client.get(reverse("evaluations:run-export-finetune", args=[run.pk]), params)
    assert response.status_code == 200
    return response, [json.loads(line) for line in _body(response).splitlines()]


def test_finetune_export_has_the_passing_outputs_once(auth_client, run):
    response, records = _finetune(auth_client, run)
    assert response["Content-Disposition"].endswith(f'-run{run.pk}-passing.jsonl"')
    # Passing without error: c0 on both arms (different outputs), c1 on ep-b, c2 on ep-a; each of
    # them twice (two samples) but written once; c2 on ep-b is marked passed but failed with an error.
    pairs = [(r["messages"][0]["content"], r["messages"][-1]["content"]) for r in records]
    assert pairs == [("ask c0", "=1+1"), ("ask c0", "out 0"), ("ask c0", "out 0 (b)"),
                     ("ask c1", "out 1"), ("ask c2", "out 2")]  # fmt: skip
    for record in records:
        assert list(record) == ["messages"]
        assert record["messages"][-1]["role"] == "assistant"
        assert [m["role"] for m in record["messages"]] == ["user", "assistant"]


def test_finetune_export_of_one_arm(auth_client, run):
    arm_a, arm_b = run.arms.order_by("position")
    response, records = _finetune(auth_client, run, arm=arm_b.pk)
    assert response["Content-Disposition"].endswith(f'-run{run.pk}-arm{arm_b.pk}-passing.jsonl"')
    assert [r["messages"][-1]["content"] for r in records] == ["out 0 (b)", "out 1"]
    _, records = _finetune(auth_client, run, arm=arm_a.pk)
    assert [r["messages"][-1]["content"] for r in records] == ["=1+1", "out 0", "out 2"]


def test_finetune_export_refuses_an_arm_of_another_run(auth_client, run):
    other = finished_run(run.suite_version, [ArmSpec(EndpointFactory(), "plain", [1.0, 1.0, 1.0])])
    url = reverse("evaluations:run-export-finetune", args=[run.pk])
    assert auth_client.get(url, {"arm": other.arms.get().pk}).status_code == 404
    assert auth_client.get(url, {"arm": "x"}).status_code == 404


# --- access -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["run-export-csv", "run-export-jsonl", "run-export-finetune"])
def test_exports_need_a_login(client, run, name):
    response = client.get(reverse(f"evaluations:{name}", args=[run.pk]))
    assert response.status_code == 302 and "/login" in response["Location"]


@pytest.mark.parametrize("name", ["run-export-csv", "run-export-jsonl", "run-export-finetune"])
def test_exports_of_a_missing_run(auth_client, db, name):
    assert auth_client.get(reverse(f"evaluations:{name}", args=[999_999])).status_code == 404


def test_the_run_page_links_to_the_exports(auth_client, run):
    page = auth_client.get(reverse("evaluations:run-detail", args=[run.pk])).content.decode()
    assert f"/runs/{run.pk}/export.csv" in page and "Export CSV" in page
    assert f"/runs/{run.pk}/export.jsonl" in page and "Export JSONL" in page
    assert f"/runs/{run.pk}/export/finetune.jsonl" in page and "Passing outputs as fine-tuning JSONL" in page
    for arm in run.arms.all():
        assert f"/runs/{run.pk}/export/finetune.jsonl?arm={arm.pk}" in page
