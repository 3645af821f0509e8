"""Drift and trends at finalize: output drift of each arm against the baseline's (a silent model
update shows as drift with the same inputs), and a falling score trend across the latest runs."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from evaluations.models import Arm, Case, EmbeddingCache, Finding, FindingKind, Result, Run, RunStatus
from evaluations.services import drift as drift_service
from evaluations.services.drift import run_drift
from evaluations.services.findings import baseline_set, finding_acknowledge
from evaluations.services.runs import run_create
from tests.factories import CaseFactory, EndpointFactory, SuiteVersionFactory, strategy
from tests.runs import run_summarise, scores_with_mean
from tests.runs import suite_version as make_version

N = 40
START = timezone.now() - timedelta(days=30)


def short(i: int) -> str:
    return f"answer {i}"


def verbose(i: int) -> str:
    return (
        f"Well, having thought about question {i} carefully and weighed every option, "
        f"I am confident that the right reply here is answer {i}."
    )


def finished(
    version,
    endpoint,
    *,
    outputs,
    scores,
    day: int,
    strat: str | tuple[str, ...] = "zero-shot",
    error: str = "",
) -> Run:
    """A succeeded run with one arm per strategy, each with the given outputs and per-case scores (or,
    with `error`, only failed calls), and its trend points."""
    cases = list(Case.objects.filter(version=version, split="test").order_by("position"))
    at = START + timedelta(days=day)
    run = Run.objects.create(suite_version=version, status=RunStatus.SUCCEEDED, started_at=at, finished_at=at)
    arms = [
        Arm.objects.create(run=run, endpoint=endpoint, strategy=strategy(name))
        for name in ((strat,) if isinstance(strat, str) else strat)
    ]
    rows = []
    for arm in arms:
        for case, out, score in zip(cases, outputs, scores, strict=True):
            words = len(out.split())
            rows.append(
                Result(
                    arm=arm,
                    case=case,
                    output="" if error else out,
                    answer="" if error else out,
                    error=error,
                    prompt_tokens=20,
                    completion_tokens=0 if error else words,
                    latency_ms=100.0,
                    cost=0.0 if error else words * 2e-6,
                    score=None if error else score,
                    passed=None if error else score >= 0.8,
                    scored_at=at,
                )
            )
    Result.objects.bulk_create(rows)
    run_summarise(run)
    return run


@pytest.fixture
def setup(db):
    version = make_version(test_cases=N)
    endpoint = EndpointFactory(name="model")
    return version, endpoint


def test_identical_repeated_outputs_raise_no_finding(setup):
    version, endpoint = setup
    scores = scores_with_mean(N, 34)
    baseline = finished(version, endpoint, outputs=[short(i) for i in range(N)], scores=scores, day=0)
    baseline_set(suite=version.suite, run=baseline)
    for day in range(1, 6):
        run = finished(version, endpoint, outputs=[short(i) for i in range(N)], scores=scores, day=day)
        assert run_drift(run=run) == []
        point = run.arms.get().trend
        assert point.drift_auc <= 0.5 and point.centroid_distance == pytest.approx(0.0, abs=1e-6)
    assert not Finding.objects.exists()


def test_same_accuracy_in_a_longer_style_is_drift_with_reasons(setup):
    version, endpoint = setup
    scores = scores_with_mean(N, 34)
    baseline = finished(version, endpoint, outputs=[short(i) for i in range(N)], scores=scores, day=0)
    baseline_set(suite=version.suite, run=baseline)
    run = finished(version, endpoint, outputs=[verbose(i) for i in range(N)], scores=scores, day=1)
    (finding,) = run_drift(run=run)
    arm = run.arms.get()
    assert finding.kind == FindingKind.DRIFT and finding.arm == arm and finding.run == run
    assert finding.baseline_run == baseline and finding.severity == "critical"
    assert "outputs drifted from baseline run" in finding.title and "a silent model update?" in finding.title
    d = finding.details
    assert d["auc"] > 0.9 and d["p_value"] < 0.001 and d["centroid_distance"] > 0.2
    assert d["shifts"]["output_chars"]["significant"] and d["shifts"]["output_chars"]["fold"] > 4
    assert d["shifts"]["completion_tokens"]["significant"]
    assert d["baseline_run"] == baseline.pk and d["baseline_arm"] == baseline.arms.get().pk
    assert d["inputs_same"] is True and d["silent_update_suspected"] is True
    reasons = " ".join(d["reasons"])
    assert "signature of a silent model update" in reasons
    assert "stable, so the scores alone would not show this drift" in reasons
    arm.trend.refresh_from_db()
    assert arm.trend.drift_auc == pytest.approx(d["auc"])
    assert arm.trend.centroid_distance == pytest.approx(d["centroid_distance"])


def test_running_it_again_is_idempotent_and_embeds_nothing_new(setup, monkeypatch):
    version, endpoint = setup
    scores = scores_with_mean(N, 34)
    baseline = finished(version, endpoint, outputs=[short(i) for i in range(N)], scores=scores, day=0)
    baseline_set(suite=version.suite, run=baseline)
    run = finished(version, endpoint, outputs=[verbose(i) for i in range(N)], scores=scores, day=1)
    (first,) = run_drift(run=run)
    assert EmbeddingCache.objects.count() == 2 * N

    inner = drift_service.get_embedder()
    embedded: list[str] = []

    class Counting:
        name = inner.name

        def embed(self, texts):
            embedded.extend(texts)
            return inner.embed(texts)

    monkeypatch.setattr(drift_service, "get_embedder", lambda: Counting())
    (again,) = run_drift(run=run)
    assert again.pk == first.pk and again.details == first.details and embedded == []
    assert Finding.objects.count() == 1


def test_a_stale_drift_finding_goes_when_the_outputs_match_the_new_baseline(setup):
    version, endpoint = setup
    scores = scores_with_mean(N, 34)
    old = finished(version, endpoint, outputs=[short(i) for i in range(N)], scores=scores, day=0)
    baseline_set(suite=version.suite, run=old)
    run = finished(version, endpoint, outputs=[verbose(i) for i in range(N)], scores=scores, day=1)
    assert len(run_drift(run=run)) == 1
    new = finished(version, endpoint, outputs=[verbose(i) for i in range(N)], scores=scores, day=2)
    baseline_set(suite=version.suite, run=new)
    assert run_drift(run=run) == []
    assert not Finding.objects.filter(kind=FindingKind.DRIFT).exists()


def test_a_new_suite_version_with_the_same_inputs_still_points_at_the_model(setup):
    version, endpoint = setup
    scores = scores_with_mean(N, 34)
    baseline = finished(version, endpoint, outputs=[short(i) for i in range(N)], scores=scores, day=0)
    baseline_set(suite=version.suite, run=baseline)
    same = SuiteVersionFactory(suite=version.suite)
    changed = SuiteVersionFactory(suite=version.suite)
    for case in Case.objects.filter(version=version):
        CaseFactory(version=same, key=case.key, position=case.position, input=case.input, expected="x")
        CaseFactory(version=changed, key=case.key, position=case.position, input=f"{case.input}?")
    run = finished(same, endpoint, outputs=[verbose(i) for i in range(N)], scores=scores, day=1)
    (finding,) = run_drift(run=run)
    assert finding.details["inputs_same"] and finding.details["silent_update_suspected"]
    assert f"v{version.number} to v{same.number}) but these cases' inputs did not" in " ".join(
        finding.details["reasons"]
    )
    run = finished(changed, endpoint, outputs=[verbose(i) for i in range(N)], scores=scores, day=2)
    (finding,) = run_drift(run=run)
    assert not finding.details["inputs_same"] and not finding.details["silent_update_suspected"]
    assert "the inputs changed" in " ".join(finding.details["reasons"])
    assert "silent model update?" not in finding.title


def test_a_changed_endpoint_configuration_is_named_as_a_cause(setup):
    version, endpoint = setup
    scores = scores_with_mean(N, 34)
    baseline = finished(version, endpoint, outputs=[short(i) for i in range(N)], scores=scores, day=0)
    baseline_set(suite=version.suite, run=baseline)
    endpoint.model = "another-model"
    endpoint.save()
    run = finished(version, endpoint, outputs=[verbose(i) for i in range(N)], scores=scores, day=1)
    (finding,) = run_drift(run=run)
    assert finding.details["endpoint_changed"] and not finding.details["silent_update_suspected"]


def test_arms_without_a_counterpart_in_the_baseline_are_not_compared(setup):
    version, endpoint = setup
    scores = scores_with_mean(N, 34)
    baseline = finished(version, endpoint, outputs=[short(i) for i in range(N)], scores=scores, day=0)
    baseline_set(suite=version.suite, run=baseline)
    other = finished(
        version, endpoint, outputs=[verbose(i) for i in range(N)], scores=scores, day=1, strat="few-shot"
    )
    assert run_drift(run=other) == []
    assert other.arms.get().trend.drift_auc is None
    assert run_drift(run=baseline) == []  # the baseline itself


def test_a_steady_fall_over_ten_runs_is_a_trend_finding_without_a_baseline(setup):
    version, endpoint = setup
    outputs = [short(i) for i in range(N)]
    runs = [
        finished(version, endpoint, outputs=outputs, scores=scores_with_mean(N, 36 - 2 * day), day=day)
        for day in range(10)
    ]
    assert version.suite.baseline_run is None
    (finding,) = run_drift(run=runs[-1])
    assert finding.kind == FindingKind.TREND and finding.baseline_run is None
    assert finding.severity == "critical"  # 0.90 -> 0.45
    d = finding.details
    assert [p["run"] for p in d["series"]] == [r.pk for r in runs]
    assert d["series"][0]["mean_score"] == pytest.approx(0.9)
    assert d["direction"] == "down" and d["p_value"] < 0.001 and d["slope"] == pytest.approx(-0.05)
    assert d["n"] == 10 and d["drop"] == pytest.approx(0.45)
    assert "mean score falling over the last 10 runs (0.900 to 0.450" in finding.title
    assert runs[-1].arms.get().trend.drift_auc is None  # no baseline: no drift figures
    assert run_drift(run=runs[-1])[0].pk == finding.pk  # idempotent
    assert Finding.objects.count() == 1


def test_a_fall_that_goes_on_is_one_open_trend_finding_until_it_is_acknowledged(setup):
    version, endpoint = setup
    outputs = [short(i) for i in range(N)]
    runs = [
        finished(version, endpoint, outputs=outputs, scores=scores_with_mean(N, 38 - 2 * day), day=day)
        for day in range(13)
    ]
    for run in runs[:10]:  # analysed night after night: the fall is found once, when significant
        run_drift(run=run)
    (first,) = Finding.objects.filter(kind=FindingKind.TREND)
    assert first.run in runs[:10] and first.severity == "critical"
    for run in runs[10:]:  # three more nights of the same fall: no new finding, no new alert
        assert run_drift(run=run) == []
    assert run_drift(run=first.run)[0].pk == first.pk  # its own run still refreshes it in place
    assert list(Finding.objects.filter(kind=FindingKind.TREND, acknowledged_at__isnull=True)) == [first]

    # Another series (strategy) of the same suite is not held back by this one's finding.
    other = [
        finished(
            version,
            endpoint,
            outputs=outputs,
            scores=scores_with_mean(N, 38 - 2 * day),
            day=day,
            strat="plain",
        )
        for day in range(10)
    ]
    (separate,) = run_drift(run=other[-1])
    assert separate.kind == FindingKind.TREND and separate.arm == other[-1].arms.get()

    finding_acknowledge(finding=first, comment="known, a prompt change is on its way")
    later = finished(version, endpoint, outputs=outputs, scores=scores_with_mean(N, 12), day=13)
    (again,) = run_drift(run=later)
    assert again.kind == FindingKind.TREND and again.run == later and again.pk != first.pk
    assert [
        f.run for f in Finding.objects.filter(kind=FindingKind.TREND, arm__strategy__name="zero-shot")
    ] == [
        later,
        first.run,
    ]


def test_the_trend_window_is_the_latest_runs_up_to_this_one(setup, settings):
    version, endpoint = setup
    settings.FTVP_TREND_RUNS = 6
    outputs = [short(i) for i in range(N)]
    # Flat for five runs, then a steady fall over six: the window of six sees only the fall.
    rights = [34, 34, 34, 34, 34, 33, 31, 29, 27, 25, 23]
    runs = [
        finished(version, endpoint, outputs=outputs, scores=scores_with_mean(N, right), day=day)
        for day, right in enumerate(rights)
    ]
    (finding,) = run_drift(run=runs[-1])
    assert [p["run"] for p in finding.details["series"]] == [r.pk for r in runs[5:]]
    assert finding.details["window"] == 6
    # Re-analysing an older run looks at the runs up to it (flat), never at the later ones.
    assert run_drift(run=runs[4]) == []


def test_flat_noisy_or_tiny_falls_are_no_trend(setup):
    version, endpoint = setup
    outputs = [short(i) for i in range(N)]
    rng = random.Random(1)
    runs = [
        finished(
            version, endpoint, outputs=outputs, scores=scores_with_mean(N, rng.choice([33, 34, 35])), day=d
        )
        for d in range(14)
    ]
    assert run_drift(run=runs[-1]) == []
    # Strictly falling, but by 0.001 a run: significant and smaller than the suite's tolerance (0.02).
    version2 = make_version(test_cases=4)
    tiny = [
        finished(version2, endpoint, outputs=["a", "b", "c", "d"], scores=[0.9 - 0.001 * d] * 4, day=d)
        for d in range(10)
    ]
    assert run_drift(run=tiny[-1]) == []


def test_the_inputs_are_compared_once_per_run_whatever_its_number_of_arms(setup):
    version, endpoint = setup
    scores = scores_with_mean(N, 34)
    # A new suite version with the same inputs: the cases of both versions must be compared.
    same = SuiteVersionFactory(suite=version.suite)
    for case in Case.objects.filter(version=version):
        CaseFactory(version=same, key=case.key, position=case.position, input=case.input, expected="x")
    strats = ("zero-shot", "few-shot", "system", "plain")
    outputs = [short(i) for i in range(N)]
    baseline = finished(version, endpoint, outputs=outputs, scores=scores, day=0, strat=strats)
    baseline_set(suite=version.suite, run=baseline)
    one = finished(same, endpoint, outputs=outputs, scores=scores, day=1)
    four = finished(same, endpoint, outputs=outputs, scores=scores, day=2, strat=strats)

    def reads(run) -> dict[str, int]:
        with CaptureQueriesContext(connection) as ctx:
            assert run_drift(run=run) == []
        sqls = [q["sql"] for q in ctx.captured_queries]
        return {
            "cases": sum('FROM "evaluations_case"' in sql for sql in sqls),
            "suite versions": sum('FROM "evaluations_suiteversion"' in sql for sql in sqls),
        }

    assert reads(one) == reads(four)  # nothing read per arm
    assert reads(four)["cases"] == 2  # each version's cases, once
    assert all(point.drift_auc is not None for point in four.trend_points.all())


def test_arms_without_outputs_are_not_compared_and_raise_nothing(setup):
    version, endpoint = setup
    scores = scores_with_mean(N, 34)
    outputs = [short(i) for i in range(N)]
    failed = finished(version, endpoint, outputs=outputs, scores=scores, day=0, error="timeout")
    baseline_set(suite=version.suite, run=failed)
    # A baseline arm with no successful result: nothing to compare with.
    run = finished(version, endpoint, outputs=[verbose(i) for i in range(N)], scores=scores, day=1)
    assert run_drift(run=run) == []
    assert run.arms.get().trend.drift_auc is None
    # An arm whose every call failed, against a baseline with outputs.
    good = finished(version, endpoint, outputs=outputs, scores=scores, day=2)
    baseline_set(suite=version.suite, run=good)
    run = finished(version, endpoint, outputs=outputs, scores=scores, day=3, error="HTTP 500")
    assert run_drift(run=run) == []
    point = run.arms.get().trend
    assert point.mean_score is None and point.drift_auc is None
    assert not Finding.objects.exists()


def test_a_deleted_baseline_is_no_baseline(setup):
    version, endpoint = setup
    scores = scores_with_mean(N, 34)
    baseline = finished(version, endpoint, outputs=[short(i) for i in range(N)], scores=scores, day=0)
    baseline_set(suite=version.suite, run=baseline)
    run = finished(version, endpoint, outputs=[verbose(i) for i in range(N)], scores=scores, day=1)
    assert len(run_drift(run=run)) == 1
    run = Run.objects.select_related("suite_version__suite").get(pk=run.pk)
    assert run.suite_version.suite.baseline_run_id == baseline.pk  # loaded before the deletion
    baseline.delete()
    assert run_drift(run=run) == []
    assert run.arms.get().trend.drift_auc is None
    assert not Finding.objects.filter(kind=FindingKind.DRIFT).exists()
    run.suite_version.suite.refresh_from_db()
    assert run.suite_version.suite.baseline_run_id is None
    assert run_drift(run=run) == []


def test_outputs_are_sampled_deterministically_above_the_cap(setup, monkeypatch):
    version, endpoint = setup
    run = finished(version, endpoint, outputs=[short(i) for i in range(N)], scores=[1.0] * N, day=0)
    monkeypatch.setattr(drift_service, "MAX_OUTPUTS", 10)
    arm = run.arms.get()
    ids = drift_service._sample_ids(arm)
    assert len(ids) == 10 and ids == sorted(ids) and ids == drift_service._sample_ids(arm)
    texts, metrics = drift_service._arm_outputs(arm)
    assert len(texts) == 10 and len(metrics["output_chars"]) == 10


# --- through the pipeline: finalize runs it ----------------------------------------------------------

LABELS = ("positive", "negative")


@pytest.fixture
def pipeline(db, fake_openai, task_queue, settings):
    settings.FTVP_BATCH_SIZE = 100
    version = SuiteVersionFactory(
        suite__name="reviews", suite__task_type="classification", labels=list(LABELS)
    )
    for i in range(60):
        CaseFactory(version=version, key=f"r{i:03d}", position=i, input=f"review {i}", expected=LABELS[i % 2])
    endpoint = EndpointFactory(name="model", model="model", base_url=fake_openai.base_url)

    def run_with(style) -> Run:
        def answer(body):
            i = int(body["messages"][-1]["content"].split()[1])
            return style(LABELS[i % 2] if i % 10 else LABELS[1 - i % 2])  # 90% right

        fake_openai.responder = answer
        run = run_create(suite_version=version, arms=[(endpoint, strategy("plain"))], use_cache=False)
        task_queue.drain()
        run.refresh_from_db()
        assert run.status == RunStatus.SUCCEEDED
        return run

    return version, run_with


def test_a_model_that_keeps_its_accuracy_but_turns_verbose_is_flagged_at_finalize(pipeline):
    version, run_with = pipeline
    baseline = run_with(lambda label: label)
    baseline_set(suite=version.suite, run=baseline)
    for _ in range(3):  # temperature 0, same answers: no false alarm
        run_with(lambda label: label)
    assert not Finding.objects.exists()
    chatty = run_with(
        lambda label: (
            f"Having read the review closely, I would say its overall sentiment is {label}, "
            "judging by the tone and the words the reviewer chose."
        )
    )
    (finding,) = Finding.objects.filter(run=chatty)
    arm = chatty.arms.get()
    assert finding.kind == FindingKind.DRIFT
    assert arm.summary["mean_score"] == pytest.approx(baseline.arms.get().summary["mean_score"])
    assert finding.details["silent_update_suspected"] and arm.trend.drift_auc > 0.9
