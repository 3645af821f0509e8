"""Drift and score trends, per arm, when a run is finalized (or re-scored).

- Output drift against the suite's baseline run (the arm with the same endpoint and strategy): the
  output embeddings (through the embedding cache), lengths, completion tokens, latency and cost of
  both arms' successful results go through `analysis.drift.output_drift`. The AUC and centroid
  distance land on the arm's trend point; drift is a DRIFT finding (one per run and arm).
- The score trend: Mann-Kendall over the last FTVP_TREND_RUNS mean scores of the arm's series
  (suite, endpoint, strategy), up to this run. A significant fall larger than the suite's regression
  tolerance is a TREND finding. No baseline needed. One fall is one finding: while a TREND finding of
  an earlier run in the window is still open (not acknowledged), a later run raises none (a step drop
  stays significant for most of the window, and would otherwise alert every night); once it is
  acknowledged, a fall that goes on raises a new one.

Both findings are refreshed on every call (findings.finding_record), and removed when no longer true. What
the arms share (the baseline run, its suite version, whether the cases' inputs changed) is read once
per call, not once per arm.
"""

from __future__ import annotations

import json
import logging
from functools import cached_property

import numpy as np
from django.conf import settings
from django.db.models import Q

from evaluations.analysis.drift import DriftReport, mann_kendall, output_drift
from evaluations.models import (
    Arm,
    Case,
    Finding,
    FindingKind,
    Result,
    Run,
    RunStatus,
    Severity,
    Suite,
    TrendPoint,
)
from evaluations.scoring.embeddings import CachedEmbedder
from evaluations.services.findings import finding_clear, finding_record
from evaluations.services.result_scores import DBVectorStore, get_embedder
from evaluations.services.trends import endpoint_fingerprint

logger = logging.getLogger(__name__)

MAX_OUTPUTS = 2000  # per arm: a deterministic sample above this
SAMPLE_SEED = 0
CRITICAL_TREND_DROP = 0.10  # a fall of this much over the window is critical
FETCH_CHUNK = 500


def _sample_ids(arm: Arm) -> list[int]:
    """The ids of the arm's successful results, at most MAX_OUTPUTS of them (a seeded sample)."""
    ids = list(Result.objects.filter(arm=arm, error="").order_by("pk").values_list("pk", flat=True))
    if len(ids) > MAX_OUTPUTS:
        picked = np.random.default_rng(SAMPLE_SEED).choice(len(ids), size=MAX_OUTPUTS, replace=False)
        ids = [ids[i] for i in sorted(picked.tolist())]
    return ids


def _arm_outputs(arm: Arm) -> tuple[list[str], dict[str, list[float | None]]]:
    ids = _sample_ids(arm)
    outputs: list[str] = []
    metrics: dict[str, list[float | None]] = {
        "output_chars": [], "completion_tokens": [], "latency_ms": [], "cost": [],
    }  # fmt: skip
    for start in range(0, len(ids), FETCH_CHUNK):
        rows = Result.objects.filter(pk__in=ids[start : start + FETCH_CHUNK]).order_by("pk")
        for output, tokens, latency, cost in rows.values_list(
            "output", "completion_tokens", "latency_ms", "cost"
        ):
            outputs.append(output)
            metrics["output_chars"].append(len(output))
            metrics["completion_tokens"].append(tokens)
            metrics["latency_ms"].append(latency)
            metrics["cost"].append(cost)
    return outputs, metrics


def _embed(texts: list[str]) -> np.ndarray:
    """Output embeddings through the DB cache: a text embedded once (by scoring or here) is reused."""
    return CachedEmbedder(get_embedder(), DBVectorStore()).embed(texts)


def _cases_signature(version_id: int) -> list:
    """What the prompts are made of: every case's key, split and input (and train answers, which
    few-shot prompts show)."""
    rows = Case.objects.filter(version_id=version_id).order_by("key")
    out = []
    for key, split, inp, exp in rows.values_list("key", "split", "input", "expected"):
        shown = json.dumps(exp, sort_keys=True) if split == "train" else ""
        out.append((key, split, json.dumps(inp, sort_keys=True), shown))
    return out


class _Comparison:
    """What every arm's comparison with the baseline shares, read once per run_drift call."""

    def __init__(self, *, baseline: Run, run: Run) -> None:
        self.baseline = baseline
        self.run = run
        self.arms = {(a.endpoint_id, a.strategy_id): a for a in baseline.arms.all()}
        self.fingerprints = dict(
            TrendPoint.objects.filter(run=baseline).values_list("arm_id", "endpoint_fingerprint")
        )
        self.versions = (baseline.suite_version.number, run.suite_version.number)

    @cached_property
    def inputs_same(self) -> bool:
        """The cases' inputs are the baseline's (loaded only when an arm has outputs to compare)."""
        if self.baseline.suite_version_id == self.run.suite_version_id:
            return True  # a suite version is immutable
        return _cases_signature(self.baseline.suite_version_id) == _cases_signature(self.run.suite_version_id)


def _baseline_of(suite: Suite, run: Run) -> Run | None:
    """The suite's baseline run to compare `run` with: none for the baseline itself, or when it is
    gone or did not succeed (read by id, so a baseline deleted since `suite` was loaded is none)."""
    if suite.baseline_run_id is None or suite.baseline_run_id == run.pk:
        return None
    return (
        Run.objects.select_related("suite_version")
        .filter(pk=suite.baseline_run_id, status=RunStatus.SUCCEEDED)
        .first()
    )


def _store_point(arm: Arm, *, auc: float | None, distance: float | None) -> None:
    TrendPoint.objects.filter(arm=arm).update(drift_auc=auc, centroid_distance=distance)


def _drift_title(arm: Arm, baseline: Run, report: DriftReport) -> str:
    d = report.to_dict()
    parts = []
    if d["auc"] is not None and d["p_value"] is not None and d["p_value"] < report.thresholds["alpha"]:
        parts.append(f"classifier AUC {d['auc']:.2f}")
    for name in ("output_chars", "completion_tokens"):
        s = report.shifts.get(name)
        if s is not None and s.significant and s.baseline_mean:
            what = "length" if name == "output_chars" else "tokens"
            parts.append(f"{what} x{(s.current_mean or 0) / s.baseline_mean:.1f}")
            break
    title = f"{arm.label}: outputs drifted from baseline run #{baseline.pk}"
    if parts:
        title += f" ({', '.join(parts)})"
    if report.silent_update_suspected:
        title += " with the same inputs: a silent model update?"
    return title


def _arm_drift(*, suite: Suite, run: Run, arm: Arm, compare: _Comparison, base_arm: Arm) -> Finding | None:
    baseline = compare.baseline
    base_texts, base_metrics = _arm_outputs(base_arm)
    texts, metrics = _arm_outputs(arm)
    if not base_texts or not texts:
        _store_point(arm, auc=None, distance=None)
        finding_clear(run=run, arm=arm, kind=FindingKind.DRIFT)
        return None
    vectors = _embed(base_texts + texts)
    base_fingerprint = compare.fingerprints.get(base_arm.pk)
    endpoint_changed = bool(base_fingerprint and base_fingerprint != endpoint_fingerprint(arm.endpoint))
    inputs_same = compare.inputs_same
    versions = compare.versions
    report = output_drift(
        baseline_embeddings=vectors[: len(base_texts)],
        current_embeddings=vectors[len(base_texts) :],
        baseline_metrics=base_metrics,
        current_metrics=metrics,
        inputs_same=inputs_same,
        suite_versions=versions,
        endpoint_changed=endpoint_changed,
        mean_scores=((base_arm.summary or {}).get("mean_score"), (arm.summary or {}).get("mean_score")),
        seed=SAMPLE_SEED,
    )
    d = report.to_dict()
    _store_point(arm, auc=d["auc"], distance=d["centroid_distance"])
    if not report.drifted:
        finding_clear(run=run, arm=arm, kind=FindingKind.DRIFT)  # e.g. a new baseline
        return None
    details = d | {
        "baseline_run": baseline.pk,
        "baseline_arm": base_arm.pk,
        "suite_versions": list(versions),
        "endpoint_changed": endpoint_changed,
    }
    return finding_record(
        run=run,
        arm=arm,
        kind=FindingKind.DRIFT,
        suite=suite,
        baseline_run=baseline,
        severity=Severity.CRITICAL if report.severity == "critical" else Severity.WARNING,
        title=_drift_title(arm, baseline, report),
        details=details,
    )


def _arm_trend(*, suite: Suite, run: Run, arm: Arm, point: TrendPoint | None) -> Finding | None:
    stale = Finding.objects.filter(run=run, arm=arm, kind=FindingKind.TREND)
    if point is None or point.mean_score is None:
        finding_clear(run=run, arm=arm, kind=FindingKind.TREND)
        return None
    window = settings.FTVP_TREND_RUNS
    series = list(
        TrendPoint.objects.filter(
            suite=suite, endpoint_id=arm.endpoint_id, strategy_id=arm.strategy_id, mean_score__isnull=False
        )
        .filter(Q(at__lt=point.at) | Q(at=point.at, run_id__lte=run.pk))
        .order_by("-at", "-run_id")
        .values_list("run_id", "mean_score")[:window]
    )[::-1]
    values = [score for _, score in series]
    test = mann_kendall(values)
    drop = -(test.slope or 0.0) * (test.n - 1)  # the fall over the window along Sen's slope
    if test.direction != "down" or drop <= suite.regression_tolerance:
        finding_clear(run=run, arm=arm, kind=FindingKind.TREND)
        return None
    if not stale.exists() and _open_trend_before(suite=suite, run=run, arm=arm, series=series):
        return None  # the same fall: its finding (and alert) is still open
    details = {
        "test": "Mann-Kendall",
        "series": [{"run": run_id, "mean_score": score} for run_id, score in series],
        "window": window,
        "drop": drop,
        "tolerance": suite.regression_tolerance,
    } | test.to_dict()
    return finding_record(
        run=run,
        arm=arm,
        kind=FindingKind.TREND,
        suite=suite,
        severity=Severity.CRITICAL if drop >= CRITICAL_TREND_DROP else Severity.WARNING,
        title=(
            f"{arm.label}: mean score falling over the last {test.n} runs "
            f"({values[0]:.3f} to {values[-1]:.3f}; {test.slope:+.4f} a run, Mann-Kendall "
            f"tau={test.tau:.2f}, p={test.p_value:.2g})"
        ),
        details=details,
    )


def _open_trend_before(*, suite: Suite, run: Run, arm: Arm, series: list[tuple[int, float]]) -> bool:
    """Is a TREND finding of the series (suite, endpoint, strategy) still open on an earlier run of
    the window?"""
    earlier = [run_id for run_id, _ in series if run_id != run.pk]
    return (
        bool(earlier)
        and Finding.objects.filter(
            suite=suite,
            kind=FindingKind.TREND,
            run_id__in=earlier,
            arm__endpoint_id=arm.endpoint_id,
            arm__strategy_id=arm.strategy_id,
            acknowledged_at__isnull=True,
        ).exists()
    )


def run_drift(*, run: Run) -> list[Finding]:
    """Output drift against the baseline and the score trend, for each arm of a finished run."""
    if run.status != RunStatus.SUCCEEDED:
        return []
    suite = run.suite_version.suite
    arms = list(run.arms.select_related("endpoint", "strategy"))
    points = {p.arm_id: p for p in TrendPoint.objects.filter(run=run)}
    baseline = _baseline_of(suite, run)
    compare = _Comparison(baseline=baseline, run=run) if baseline is not None else None
    findings: list[Finding] = []
    for arm in arms:
        base_arm = compare.arms.get((arm.endpoint_id, arm.strategy_id)) if compare is not None else None
        if base_arm is None:
            _store_point(arm, auc=None, distance=None)
            finding_clear(run=run, arm=arm, kind=FindingKind.DRIFT)
        else:
            finding = _arm_drift(suite=suite, run=run, arm=arm, compare=compare, base_arm=base_arm)
            if finding is not None:
                findings.append(finding)
        finding = _arm_trend(suite=suite, run=run, arm=arm, point=points.get(arm.pk))
        if finding is not None:
            findings.append(finding)
    if findings:
        logger.info("run #%s: %d drift/trend finding(s)", run.pk, len(findings))
    return findings
