from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from evaluations.models import Endpoint, Run, Suite


@pytest.fixture
def suite_file(tmp_path):
    path = tmp_path / "cases.csv"
    path.write_text("input,expected\nhello,hi\nbye,ciao\n")
    return path


def test_import_suite_reports_what_it_imported(db, suite_file):
    out = io.StringIO()
    call_command("import_suite", str(suite_file), "--name", "greet", stdout=out)
    assert "imported greet v1 (generation, csv): 2 test and 0 train cases" in out.getvalue()


def test_import_suite_refuses_a_bad_file_with_exit_code_2_and_adds_nothing(db, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("input,expected\n,empty input\n")
    with pytest.raises(CommandError) as err:
        call_command("import_suite", str(bad), "--name", "greet")
    assert err.value.returncode == 2
    assert "bad.csv" in str(err.value) and "line 2" in str(err.value)
    assert not Suite.objects.exists()


def test_add_endpoint_stores_prices_and_params(db):
    call_command("add_endpoint", "gpt", "--provider", "openai", "--model", "gpt-4o-mini",
                 "--base-url", "http://127.0.0.1:9/v1", "--api-key-env", "OPENAI_API_KEY",
                 "--price-in", "0.15", "--price-out", "0.6", "--max-tokens", "32",
                 stdout=io.StringIO())  # fmt: skip
    endpoint = Endpoint.objects.get(name="gpt")
    assert (float(endpoint.price_in), float(endpoint.price_out)) == (0.15, 0.6)
    assert endpoint.params == {"temperature": 0.0, "max_tokens": 32}


def test_add_endpoint_refuses_a_missing_base_endpoint(db):
    with pytest.raises(CommandError, match="no such endpoint"):
        call_command("add_endpoint", "ft", "--provider", "local", "--model", "m", "--kind", "fine_tuned",
                     "--base-endpoint", "nope")  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--suite", "nope", "--arm", "e:plain"], "no such suite"),
        (["--suite", "greet", "--suite-version", "9", "--arm", "e:plain"], "has no version 9 (versions: 1)"),
        (["--suite", "greet", "--arm", "e-plain"], "write ENDPOINT:STRATEGY"),
        (["--suite", "greet", "--arm", "nope:plain"], "no endpoint named 'nope'"),
        (["--suite", "greet", "--arm", "e:nope"], "no strategy named 'nope'"),
    ],
)
def test_evaluate_explains_bad_arguments_with_exit_code_2(db, suite_file, args, message):
    call_command("import_suite", str(suite_file), "--name", "greet", stdout=io.StringIO())
    call_command("add_endpoint", "e", "--provider", "local", "--model", "smollm2", stdout=io.StringIO())
    with pytest.raises(CommandError) as err:
        call_command("evaluate", *args)
    assert err.value.returncode == 2
    assert message in str(err.value)
    assert not Run.objects.exists()


def test_evaluate_without_wait_queues_the_run_and_prints_json(db, suite_file, task_queue):
    call_command("import_suite", str(suite_file), "--name", "greet", stdout=io.StringIO())
    call_command("add_endpoint", "e", "--provider", "local", "--model", "smollm2", stdout=io.StringIO())
    out = io.StringIO()
    call_command(
        "evaluate", "--suite", "greet", "--arm", "e:zero-shot", "--json", stdout=out, stderr=io.StringIO()
    )
    report = json.loads(out.getvalue())
    assert report["status"] == "queued"
    assert [(a["endpoint"], a["strategy"], a["cases"]) for a in report["arms"]] == [("e", "zero-shot", 0)]
