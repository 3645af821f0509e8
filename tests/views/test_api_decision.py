"""GET /api/v1/suites/<id>/decision: the decision on a suite, the same dict `decision --json` prints."""

from __future__ import annotations

import io
import json
import warnings

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse

from tests.runs import ArmSpec, endpoints, finished_run, scores_with_mean, suite_version


@pytest.fixture
def prompting_suite(db):
    """Zero-shot scores 60/100, few-shot 90/100 against the target 0.8: prompting is enough."""
    version = suite_version(test_cases=100, name="tickets", quality_target=0.8)
    base, _ = endpoints()
    run = finished_run(
        version,
        [
            ArmSpec(base, "zero-shot", scores_with_mean(100, 60), prompt_tokens=100),
            ArmSpec(base, "few-shot", scores_with_mean(100, 90), prompt_tokens=400),
        ],
    )
    return version.suite, run


def url(suite_id: int) -> str:
    return reverse("api-v1:suite-decision", args=[suite_id])


def test_the_url():
    assert url(7) == "/api/v1/suites/7/decision"


def test_the_decision_of_a_suite(auth_client, prompting_suite):
    suite, run = prompting_suite
    response = auth_client.get(url(suite.pk))
    assert response.status_code == 200
    d = response.json()
    assert d["verdict"] == "prompting-enough"
    assert d["suite"] == {"id": suite.pk, "name": "tickets"}
    assert d["run"]["id"] == run.pk
    assert "few-shot" in d["arm"]
    assert d["evidence"] and d["checklist"] and len(d["ladder"]) == 2
    for key in ("train_examples", "tokens_per_char", "title", "summary", "caveats", "cases_needed",
                "costs", "break_even", "curves", "frontier", "profile"):  # fmt: skip
        assert key in d


def test_the_api_and_the_command_return_the_same_dict(auth_client, prompting_suite):
    suite, run = prompting_suite
    out = io.StringIO()
    call_command("decision", "--suite", "tickets", "--json", stdout=out)
    assert auth_client.get(url(suite.pk)).json() == json.loads(out.getvalue())
    given = auth_client.get(url(suite.pk), {"run": run.pk})
    assert given.status_code == 200 and given.json()["run"]["id"] == run.pk


def test_a_suite_without_runs_has_no_evidence_yet(auth_client, db):
    suite = suite_version(test_cases=3, name="empty").suite
    response = auth_client.get(url(suite.pk))
    assert response.status_code == 200
    assert response.json()["verdict"] == "no-evidence"
    assert response.json()["run"] is None


def test_an_unknown_suite_is_404(auth_client, db):
    assert auth_client.get(url(999)).status_code == 404


@pytest.mark.parametrize("bad", ["abc", "-1", "0", "1.5"])
def test_a_run_id_that_is_not_one_is_400(auth_client, prompting_suite, bad):
    suite, _ = prompting_suite
    response = auth_client.get(url(suite.pk), {"run": bad})
    assert response.status_code == 400
    assert response.json() == {"detail": f"run: {bad!r} is not a run id (a positive whole number)"}


def test_a_run_of_another_suite_is_400(auth_client, prompting_suite):
    _, run = prompting_suite
    other = suite_version(test_cases=1, name="other").suite
    response = auth_client.get(url(other.pk), {"run": run.pk})
    assert response.status_code == 400
    assert response.json()["detail"] == f"run: run #{run.pk} is not a finished run of suite 'other'"
    missing = auth_client.get(url(other.pk), {"run": run.pk + 100})
    assert missing.status_code == 400 and "is not a finished run" in missing.json()["detail"]


def test_anonymous_users_are_refused(client, prompting_suite):
    suite, _ = prompting_suite
    response = client.get(url(suite.pk))
    assert response.status_code in (401, 403)
    assert b"verdict" not in response.content


def test_the_api_is_read_only(auth_client, prompting_suite):
    suite, _ = prompting_suite
    assert auth_client.post(url(suite.pk), {}).status_code == 405


def test_the_existing_api_still_answers(auth_client, prompting_suite):
    assert auth_client.get(reverse("api:run-list")).status_code == 200
    assert auth_client.get("/api/runs/").json()["count"] == 1


def test_the_schema_documents_the_decision(auth_client, db):
    response = auth_client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = json.loads(response.content)
    operation = schema["paths"]["/api/v1/suites/{id}/decision"]["get"]
    assert operation["operationId"] == "suite_decision"
    assert {p["name"]: p["in"] for p in operation["parameters"]} == {"id": "path", "run": "query"}
    # 401/403: added to every operation by the schema's error hook (evaluations/api/schema.py)
    assert set(operation["responses"]) == {"200", "400", "401", "403", "404"}
    assert "verdict" in operation["responses"]["200"]["description"]
    assert "/api/runs/" in schema["paths"]


def test_the_schema_generates_without_warnings(db, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        call_command("spectacular", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    assert "/api/v1/suites/{id}/decision" in (tmp_path / "schema.yaml").read_text()


def test_a_suite_is_uploaded_through_the_api_in_a_peer_format(auth_client, db):
    from tests.fixtures import PEER_FORMATS

    with (PEER_FORMATS / "deepeval__goldens.json").open("rb") as fh:
        response = auth_client.post(
            "/api/v1/suites/", {"name": "goldens", "file": fh, "test_fraction": "0.2"}
        )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["format"] == "deepeval" and body["cases"] == {"test": 3, "train": 12} and body["version"] == 1
    bad = auth_client.post(
        "/api/v1/suites/", {"name": "broken", "file": SimpleUploadedFile("x.jsonl", b'{"input": 1}\n')}
    )
    assert bad.status_code == 400 and "x.jsonl" in bad.json()["detail"] and bad.json()["errors"]


def test_the_upload_api_needs_a_login(client, db):
    assert client.post("/api/v1/suites/", {"name": "x"}).status_code in (401, 403)
