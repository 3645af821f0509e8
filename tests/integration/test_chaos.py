"""Runs on a real worker against a misbehaving OpenAI-compatible server (tests/chaos.py): nothing
lost, nothing counted twice, every failure an error result that says what happened; and two workers
on one run, which never call the model twice for the same result."""

from __future__ import annotations

import io
import json
import re
from collections import Counter

import pytest

from evaluations.analysis.costs import token_cost
from evaluations.models import Result, Run, RunStatus
from evaluations.services.endpoints import endpoint_create
from evaluations.services.runs import run_create
from evaluations.services.suites import suite_import
from tests.chaos import ChaosOpenAI, answer_for, case_of
from tests.conftest import WorkerProcess, wait_for
from tests.factories import strategy
from tests.fakeopenai import FakeOpenAI

pytestmark = pytest.mark.integration

CASES = 1000
RETRIES = 2  # the worker's FTVP_HTTP_RETRIES: three attempts a call
TIMEOUT = 6  # the endpoint's timeout_seconds: well above a loopback answer on a loaded machine
MAX_TOKENS = 16
PRICE_IN, PRICE_OUT = 2.0, 10.0  # USD per 1M tokens


def _suite_csv(n: int) -> bytes:
    rows = ["id,input,expected"] + [f"c{i:04d},case {i} please,{answer_for(i)}" for i in range(n)]
    return ("\n".join(rows) + "\n").encode()


def test_a_1000_case_run_against_a_chaotic_server_finishes_with_every_result_accounted_for(worker):
    worker.env["FTVP_HTTP_RETRIES"] = str(RETRIES)
    with ChaosOpenAI(timeout=TIMEOUT, max_attempts=RETRIES + 1) as server:
        version = suite_import(name="chaos", fileobj=io.BytesIO(_suite_csv(CASES)), filename="chaos.csv")
        endpoint = endpoint_create(
            name="chaos", provider="openai", model="chaos", base_url=server.base_url, price_in=str(PRICE_IN),
            price_out=str(PRICE_OUT), max_concurrency=32, timeout_seconds=TIMEOUT,
            params={"max_tokens": MAX_TOKENS},
        )  # fmt: skip
        worker.start()
        run = run_create(suite_version=version, arms=[(endpoint, strategy("plain"))], use_cache=False)
        wait_for(lambda: Run.objects.get(pk=run.pk).is_finished, 240, 1.0, message="the chaos run to finish")
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, (run.error, worker.log_text())

    results = list(Result.objects.filter(arm__run=run).select_related("case"))
    assert len(results) == CASES
    assert len({(r.arm_id, r.case_id, r.sample) for r in results}) == CASES
    by_case = {int(r.case.key[1:]): r for r in results}
    assert sorted(by_case) == list(range(CASES))

    planned = {case: server.outcome(case) for case in range(CASES)}
    faults = Counter(server.scenario(case).name for case in range(CASES))
    assert len(faults) == 18, faults  # every scenario of tests/chaos.py came up
    for case, result in by_case.items():
        plan, name = planned[case], server.scenario(case).name
        assert server.attempts[case] == plan.requests, (case, name, result.error)
        if plan.ok:
            assert result.error == "", (case, name, result.error)
            if name == "long":  # far past max_tokens: kept as the model said it, billed as reported
                assert result.completion_tokens == len(result.output.split()) >= 40 * MAX_TOKENS
                assert set(result.output.split()) == {"answer", str(case)}
            else:
                assert result.output == answer_for(case), (case, name)
            assert result.cost == pytest.approx(
                token_cost(result.prompt_tokens, result.completion_tokens, PRICE_IN, PRICE_OUT)
            )
        else:
            # Readable: the whole text is the planned sentence (no repr, no traceback, no HTML).
            assert re.fullmatch(plan.error, result.error), (case, name, result.error)
            assert result.output == "" and result.cost == 0.0 and result.completion_tokens is None
    retried_ok = [c for c, p in planned.items() if p.ok and p.retried]
    assert retried_ok and all(server.attempts[c] > 1 and by_case[c].error == "" for c in retried_ok)

    ok = [r for r in results if not r.error]
    errors = [r for r in results if r.error]
    assert len(ok) + len(errors) == CASES
    assert len(errors) == sum(1 for p in planned.values() if not p.ok)
    # Every request the server got is a first try or a retry the client counted.
    first_tries, retries = CASES, sum(p.requests - 1 for p in planned.values())
    assert len(server.requests) == sum(server.attempts.values()) == first_tries + retries
    assert all(case_of(body) is not None for body in server.requests)

    (arm,) = run.arms.all()
    summary = arm.summary
    assert (summary["results"], summary["cases"], summary["errors"]) == (CASES, CASES, len(errors))
    assert summary["cost_total"] == pytest.approx(sum(r.cost for r in results))
    assert summary["cost_total"] == pytest.approx(
        sum(token_cost(r.prompt_tokens, r.completion_tokens, PRICE_IN, PRICE_OUT) for r in ok)
    )
    assert summary["cost_per_request"] == pytest.approx(summary["cost_total"] / len(ok))
    assert summary["prompt_tokens_mean"] == pytest.approx(sum(r.prompt_tokens for r in ok) / len(ok))
    assert summary["completion_tokens_mean"] == pytest.approx(sum(r.completion_tokens for r in ok) / len(ok))
    assert summary["scored"] == CASES


def test_two_workers_on_one_run_never_call_the_model_twice_for_the_same_result(worker, tmp_path):
    n = 300
    server = FakeOpenAI(delay=0.1)
    second = WorkerProcess(dict(worker.env), tmp_path / "second")
    (tmp_path / "second").mkdir()
    try:
        version = suite_import(name="pairs", fileobj=io.BytesIO(_suite_csv(n)), filename="pairs.csv")
        a, b = (
            endpoint_create(name=f"echo-{m}", provider="openai", model=m, base_url=server.base_url,
                            max_concurrency=4, timeout_seconds=10)
            for m in ("a", "b")
        )  # fmt: skip
        worker.start()
        run = run_create(
            suite_version=version,
            arms=[(a, strategy("plain")), (b, strategy("plain"))],
            use_cache=False,
        )
        wait_for(lambda: Result.objects.filter(arm__run=run).count() >= 40, 120, message="the first results")
        # The second worker's start sends every batch nobody holds again: each is now queued twice.
        second.start()
        assert not Run.objects.get(pk=run.pk).is_finished, "the run ended before the second worker came"
        wait_for(lambda: Run.objects.get(pk=run.pk).is_finished, 240, 1.0, message="the run to finish")
    finally:
        second.stop()
        server.stop()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, (run.error, worker.log_text(), second.log_text())

    prompts = Counter((body["model"], json.dumps(body["messages"])) for body in server.requests)
    assert len(prompts) == 2 * n  # every (case, arm) asked...
    assert set(prompts.values()) == {1}, [p for p, k in prompts.items() if k > 1][:3]  # ...once
    results = Result.objects.filter(arm__run=run)
    assert results.count() == 2 * n
    assert len(set(results.values_list("arm_id", "case_id", "sample"))) == 2 * n
    assert not results.exclude(error="").exists()
    # Both workers generated batches of the run.
    for w in (worker, second):
        log = "".join(p.read_text(errors="replace") for p in w.log_dir.glob("worker-*.log"))
        assert re.search(r"run_batch\[[^\]]+\] succeeded", log), w.log_text()
