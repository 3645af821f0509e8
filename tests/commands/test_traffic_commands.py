"""`manage.py capture_token`, `manage.py traffic` and `manage.py traffic_to_suite`."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from evaluations.models import CaptureToken, Run
from evaluations.selectors.traffic import TrafficFilter, traffic_summary
from evaluations.selectors.training_data import training_set
from evaluations.services.tokens import token_hash
from tests import traffic_rows
from tests.factories import EndpointFactory, strategy

pytestmark = pytest.mark.django_db


def run(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def gpt(db):
    strategy("plain")
    return EndpointFactory(name="gpt")


def test_capture_token_create_prints_the_token_once_and_keeps_its_hash(gpt):
    out, err = run(
        "capture_token", "create", "--name", "bot", "--endpoint", "gpt", "--tag", "prod", "--rate", "0"
    )
    token = out.strip()
    row = CaptureToken.objects.get()
    assert token.startswith("ftvpc_") and row.key_hash == token_hash(token) and "shown once" in err
    assert row.tags == ["prod"] and row.rate_per_minute == 0
    listed, _ = run("capture_token", "list", "--json")
    assert json.loads(listed)[0]["prefix"] == row.prefix and token not in listed
    revoked, _ = run("capture_token", "revoke", row.prefix)
    row.refresh_from_db()
    assert "revoked" in revoked and row.revoked_at is not None
    assert "[revoked]" in run("capture_token", "list")[0]
    with pytest.raises(CommandError, match="no endpoint 'nope'"):
        run("capture_token", "create", "--name", "bot", "--endpoint", "nope")
    with pytest.raises(CommandError, match="no such capture token"):
        run("capture_token", "revoke", "ftvpc_nothing")


def test_traffic_json_is_the_summary(gpt):
    traffic_rows.call(gpt, tags=["prod"], latency_ms=10.0)
    traffic_rows.call(gpt, tags=["dev"], latency_ms=30.0)
    traffic_rows.call(EndpointFactory(name="other"), days_ago=3)
    out, _ = run("traffic", "--json")
    assert json.loads(out) == json.loads(json.dumps(traffic_summary()))
    filtered = json.loads(run("traffic", "--endpoint", "gpt", "--tag", "prod", "--days", "7", "--json")[0])
    assert filtered == json.loads(
        json.dumps(traffic_summary(TrafficFilter(endpoint="gpt", tag="prod"), days=7))
    )
    assert filtered["totals"]["calls"] == 1 and len(filtered["days"]) == 7
    text, _ = run("traffic")
    assert "3 calls" in text and "gpt: 2 calls" in text
    with pytest.raises(CommandError, match="--days"):
        run("traffic", "--days", "0")


def test_traffic_to_suite_makes_cases_and_a_captured_run_to_train_on(gpt):
    for i in range(8):
        traffic_rows.call(gpt, question=f"question {i}", answer=f"answer {i}")
    args = ["--suite", "cli", "--endpoint", "gpt", "--sample", "8", "--test-share", "0", "--seed", "5"]
    out, _ = run("traffic_to_suite", *args, "--json")
    body = json.loads(out)
    assert body["sampled"] == 8 and body["train"] == 8 and body["suite_version"] == 1
    run_row = Run.objects.get(pk=body["run"])
    arm = body["arms"][0]["id"]
    rows = training_set(run_row.suite_version, f"run:{run_row.pk}:{arm}:all").rows
    assert sorted(r.answer for r in rows) == sorted(f"answer {i}" for i in range(8))
    with pytest.raises(CommandError, match="no new input"):
        run("traffic_to_suite", "--suite", "cli", "--sample", "8")
    with pytest.raises(CommandError, match="--from"):
        run("traffic_to_suite", "--suite", "cli", "--from", "soon")
