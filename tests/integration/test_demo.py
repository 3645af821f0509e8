"""The demo's story end to end, scaled down: a real worker fine-tunes the local model on generated
tickets, evaluates the ladder and the fine-tune, and the decision page answers; a second pass
reuses everything."""

from __future__ import annotations

import shutil

import pytest
from django.conf import settings
from django.urls import reverse

from evaluations.demo import TICKETS_SUITE, DemoSize, demo_job, demo_setup, demo_story
from evaluations.models import Endpoint, FineTuneJob, Run, RunStatus, Suite

pytestmark = pytest.mark.integration

SMALL = DemoSize(train=16, test=10, epochs=1)


def test_the_demo_story_ends_with_a_decision_and_is_idempotent(worker, admin_client):
    suite = demo_setup(size=SMALL)
    assert suite.name == TICKETS_SUITE and suite.task_type == "classification"
    version = suite.latest_version()
    assert (
        version.cases.filter(split="test").count() == 10 and version.cases.filter(split="train").count() == 16
    )
    worker.start()
    lines: list[str] = []
    try:
        job, run = demo_story(say=lines.append, size=SMALL, timeout=900, poll=0.5)
    finally:
        shutil.rmtree(settings.MEDIA_ROOT / "adapters", ignore_errors=True)
    assert run.status == RunStatus.SUCCEEDED, worker.log_text()
    # The optimised few-shot rung: searched once, before the fine-tune, and on the ladder.
    assert any(line.startswith("searching few-shot demonstrations: 3 candidate sets") for line in lines)
    assert any(line.startswith("  frozen as strategy few-shot-optimized-demo-tickets") for line in lines)
    assert any(line.startswith("fine-tuning smollm2-local on 16 tickets") for line in lines)
    assert any("training: step" in line for line in lines)
    assert (
        lines[-1] == f"  {run.expected_results}/{run.expected_results} answers, {run.expected_results} scored"
    )
    # The ladder: six prompting strategies, the optimised few-shot, retrieval from the suite's routing
    # guide, the fine-tune, and the fine-tune with retrieval.
    names = sorted(
        (a.endpoint.kind, a.strategy.name) for a in run.arms.select_related("endpoint", "strategy")
    )
    assert names == sorted(
        [("base", s) for s in ("zero-shot", "few-shot", "few-shot-nearest", "system", "cot", "structured")]
        + [
            ("base", "few-shot-optimized-demo-tickets"),
            ("base", "rag"),
            ("fine_tuned", "plain"),
            ("fine_tuned", "rag"),
        ]
    )
    assert run.expected_results == 100
    rag = run.arms.get(endpoint__kind="base", strategy__name="rag").summary["retrieval"]
    assert rag["cases_with_gold"] == 10 and 0 <= rag["recall_at_k"] <= 1
    assert job.endpoint.training_cost > 0
    # The decision page shows every arm of the ladder and the fine-tune, and a recommendation.
    html = admin_client.get(reverse("evaluations:suite-decision", args=[suite.pk])).content.decode()
    steps = ("Zero-shot", "Few-shot (random)", "Few-shot (nearest)", "Few-shot (optimised)",
             "Chain-of-thought", "Retrieval (RAG)", "Fine-tuned", "Fine-tuned + RAG")  # fmt: skip
    for step in steps:
        assert f"<td>{step}</td>" in html
    assert html.count("<td>System prompt / structured output</td>") == 2
    assert 'data-verdict="' in html and 'data-verdict="no-evidence"' not in html
    # Running the demo again creates nothing: the same job, run, suites and endpoints.
    before = [m.objects.count() for m in (Suite, Endpoint, FineTuneJob, Run)]
    demo_setup(size=SMALL)
    assert demo_job(suite, size=SMALL) == job
    again, same_run = demo_story(say=lines.append, size=SMALL, timeout=30, poll=0.1)
    assert (again, same_run) == (job, run)
    assert [m.objects.count() for m in (Suite, Endpoint, FineTuneJob, Run)] == before
