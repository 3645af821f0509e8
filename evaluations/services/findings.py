"""Baselines and findings: every finished run is compared with its suite's baseline, arm by arm (same
endpoint and strategy), paired on cases; a significant drop beyond the suite's tolerance is a
regression finding that lists the cases that flipped from pass to fail."""

from __future__ import annotations

from collections import defaultdict

from django.db import transaction
from django.utils import timezone

from evaluations.analysis.compare import WORSE, compare_passes, compare_scores
from evaluations.models import Finding, FindingKind, Result, Run, RunStatus, Severity, Suite
from evaluations.services.audit import audit_record

MAX_FLIPPED = 50
CRITICAL_DROP = 0.10


class BaselineError(ValueError):
    pass


@transaction.atomic
def baseline_set(*, suite: Suite, run: Run | None, user=None) -> Suite:
    """Make a finished run of the suite its baseline (None clears it): by a sign-off that met the
    suite's policy, or by an admin's override. Recorded as an AuditEvent "suite.baseline"."""
    if run is not None:
        if run.suite_version.suite_id != suite.pk:
            raise BaselineError(f"run #{run.pk} is not a run of suite {suite.name!r}")
        if run.status != RunStatus.SUCCEEDED:
            raise BaselineError(f"run #{run.pk} is {run.status}; only a finished run can be the baseline")
    before = Suite.objects.filter(pk=suite.pk).values_list("baseline_run_id", flat=True).first()
    suite.baseline_run = run
    suite.save(update_fields=["baseline_run"])
    if before != suite.baseline_run_id:
        audit_record(
            actor=user,
            action="suite.baseline",
            obj=suite,
            suite_id=suite.pk,
            before={"baseline_run": before},
            after={"baseline_run": suite.baseline_run_id},
        )
    return suite


def _per_case(arm_ids: list[int]) -> dict[int, tuple[dict[str, float], dict[str, bool]]]:
    """Per arm: the mean score and the all-samples-pass of each case, by case key (versions may differ)."""
    scores: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    passes: dict[int, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    rows = Result.objects.filter(arm_id__in=arm_ids, scored_at__isnull=False).values_list(
        "arm_id", "case__key", "score", "passed"
    )
    for arm_id, key, score, passed in rows.iterator(chunk_size=5000):
        if score is not None:
            scores[arm_id][key].append(score)
        if passed is not None:
            passes[arm_id][key].append(passed)
    return {
        arm_id: (
            {k: sum(v) / len(v) for k, v in scores[arm_id].items()},
            {k: all(v) for k, v in passes[arm_id].items()},
        )
        for arm_id in arm_ids
    }


def run_compare_with_baseline(*, run: Run) -> list[Finding]:
    """Regression findings for the run against its suite's baseline (idempotent: one per arm)."""
    suite = run.suite_version.suite
    baseline = suite.baseline_run
    if baseline is None or baseline.pk == run.pk or baseline.status != RunStatus.SUCCEEDED:
        return []
    current_arms = list(run.arms.select_related("endpoint", "strategy"))
    base_arms = {(a.endpoint_id, a.strategy_id): a for a in baseline.arms.all()}
    pairs = [
        (a, base_arms[(a.endpoint_id, a.strategy_id)])
        for a in current_arms
        if (a.endpoint_id, a.strategy_id) in base_arms
    ]
    if not pairs:
        return []
    data = _per_case([a.pk for pair in pairs for a in pair])
    findings = []
    for arm, base in pairs:
        base_scores, base_passes = data[base.pk]
        scores, passes = data[arm.pk]
        by_score = compare_scores(base_scores, scores)
        by_pass = compare_passes(base_passes, passes)
        drops = [
            c
            for c in (by_score, by_pass)
            if c.verdict == WORSE and c.diff is not None and -c.diff > suite.regression_tolerance
        ]
        if not drops:
            Finding.objects.filter(
                run=run, arm=arm, kind=FindingKind.REGRESSION
            ).delete()  # e.g. after a re-score
            continue
        worst = min(drops, key=lambda c: c.diff)
        flipped = sorted(k for k in passes if base_passes.get(k) is True and passes[k] is False)
        what = "mean score" if worst.metric == "score" else "pass rate"
        details = {
            "metric": worst.metric,
            "baseline": worst.mean_a,
            "current": worst.mean_b,
            "diff": worst.diff,
            "diff_ci": list(worst.diff_ci),
            "p_value": worst.p_value,
            "test": worst.test,
            "cases": worst.n,
            "tolerance": suite.regression_tolerance,
            "flipped": flipped[:MAX_FLIPPED],
            "flipped_count": len(flipped),
            "baseline_arm": base.pk,
            "score": by_score.to_dict(),
            "pass": by_pass.to_dict(),
        }
        finding, _ = Finding.objects.update_or_create(
            run=run,
            arm=arm,
            kind=FindingKind.REGRESSION,
            defaults={
                "suite": suite,
                "baseline_run": baseline,
                "severity": Severity.CRITICAL if -worst.diff >= CRITICAL_DROP else Severity.WARNING,
                "title": (
                    f"{arm.label}: {what} fell from {worst.mean_a:.3f} to {worst.mean_b:.3f} "
                    f"({worst.diff:+.3f}, p={worst.p_value:.2g}) against baseline run #{baseline.pk}; "
                    f"{len(flipped)} case(s) flipped from pass to fail"
                ),
                "details": details,
            },
        )
        findings.append(finding)
    return findings


@transaction.atomic
def finding_acknowledge(*, finding: Finding, user=None, comment: str = "") -> Finding:
    finding.acknowledged_at = timezone.now()
    finding.acknowledged_by = user
    finding.comment = comment.strip()
    finding.save(update_fields=["acknowledged_at", "acknowledged_by", "comment"])
    audit_record(
        actor=user,
        action="finding.acknowledge",
        obj=finding,
        object_repr=finding.title,
        suite_id=finding.suite_id,
        after={"run": finding.run_id, "kind": finding.kind, "comment": finding.comment},
    )
    return finding


def run_regressions(run: Run) -> list[Finding]:
    return list(
        Finding.objects.filter(run=run, kind=FindingKind.REGRESSION).select_related(
            "suite", "acknowledged_by", "arm__endpoint", "arm__strategy"
        )
    )
