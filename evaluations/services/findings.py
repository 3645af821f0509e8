"""Baselines and findings: every finished run is compared with its suite's baseline, arm by arm (same
endpoint and strategy), paired on cases; a significant drop beyond the suite's tolerance is a
regression finding that lists the cases that flipped from pass to fail."""

from __future__ import annotations

from collections import defaultdict

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from evaluations.analysis.compare import WORSE, compare_passes, compare_scores
from evaluations.models import Finding, FindingKind, Result, Run, RunStatus, Severity, Suite, run_is_evidence
from evaluations.selectors.signoffs import own_work_reason
from evaluations.services.audit import audit_record

MAX_FLIPPED = 50
CRITICAL_DROP = 0.10


class BaselineError(ValueError):
    pass


TITLE_MAX = Finding._meta.get_field("title").max_length


class SelfApprovalError(PermissionDenied):
    """The user started the run or requested a sign-off of it: someone else must decide on it."""


def finding_record(
    *, run: Run, arm, kind: str, suite: Suite, severity: str, title: str, details: dict, baseline_run=None
) -> Finding:
    """The arm's finding of this kind, created or refreshed: one per run, arm and kind, whether it
    is a regression, drift or a trend."""
    finding, _ = Finding.objects.update_or_create(
        run=run,
        arm=arm,
        kind=kind,
        defaults={
            "suite": suite,
            "baseline_run": baseline_run,
            "severity": severity,
            "title": title[:TITLE_MAX],
            "details": details,
        },
    )
    return finding


def finding_clear(*, run: Run, arm, kind: str) -> None:
    """The arm's finding of this kind is no longer true (after a re-score, against a new baseline)."""
    Finding.objects.filter(run=run, arm=arm, kind=kind).delete()


@transaction.atomic
def baseline_set(*, suite: Suite, run: Run | None, user=None, override: bool = False) -> Suite:
    """Make a finished run of the suite its baseline (None clears it). Recorded as an AuditEvent
    "suite.baseline". The sign-off that meets the suite's policy calls it for the run it signs off.

    `override=True` is an admin setting the baseline without a sign-off (the run page, the API): the
    event says `"override": true`, and it is refused for the user's own work (they started the run or
    requested a sign-off of it: SelfApprovalError, a PermissionDenied) and for a run that is not
    signed off in place of a signed-off baseline (BaselineError): both need a sign-off."""
    if run is not None:
        if run.suite_version.suite_id != suite.pk:
            raise BaselineError(f"run #{run.pk} is not a run of suite {suite.name!r}")
        if run.status != RunStatus.SUCCEEDED:
            raise BaselineError(f"run #{run.pk} is {run.status}; only a finished run can be the baseline")
        if not run_is_evidence(run):
            raise BaselineError(
                f"run #{run.pk} is a labelling run or captured traffic's answers; the baseline is an "
                "evaluation of the test split"
            )
    # The suite's row lock serialises baseline changes: an override checks the baseline it replaces.
    locked = Suite.objects.select_for_update().filter(pk=suite.pk)
    before = locked.values_list("baseline_run_id", flat=True).first()
    if override and run is not None and before != run.pk:
        _override_check(suite=suite, run=run, user=user, replaces=before)
    suite.baseline_run = run
    suite.save(update_fields=["baseline_run"])
    if before != suite.baseline_run_id:
        audit_record(
            actor=user,
            action="suite.baseline",
            obj=suite,
            suite_id=suite.pk,
            before={"baseline_run": before},
            after={"baseline_run": suite.baseline_run_id, **({"override": True} if override else {})},
        )
    return suite


def _override_check(*, suite: Suite, run: Run, user, replaces: int | None) -> None:
    """Refuse an override that would stand in for a sign-off. A run signed off already was approved by
    others: making it the baseline again is no self-approval."""
    if Run.objects.filter(pk=run.pk, signed_off_at__isnull=False).exists():
        return
    reason = own_work_reason(run=run, user=user)
    if reason:
        raise SelfApprovalError(
            f"{reason}: request a sign-off instead; once someone else approves it, run #{run.pk} "
            "becomes the baseline"
        )
    if replaces is not None and Run.objects.filter(pk=replaces, signed_off_at__isnull=False).exists():
        raise BaselineError(
            f"the baseline of {suite.name!r} is run #{replaces}, which is signed off, and run #{run.pk} is "
            f"not: request a sign-off of run #{run.pk} instead; its approval makes it the baseline"
        )


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
    if not run_is_evidence(run):  # a labelling run answers other cases; captured answers are no model's run
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
            finding_clear(run=run, arm=arm, kind=FindingKind.REGRESSION)
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
        finding = finding_record(
            run=run,
            arm=arm,
            kind=FindingKind.REGRESSION,
            suite=suite,
            baseline_run=baseline,
            severity=Severity.CRITICAL if -worst.diff >= CRITICAL_DROP else Severity.WARNING,
            title=(
                f"{arm.label}: {what} fell from {worst.mean_a:.3f} to {worst.mean_b:.3f} "
                f"({worst.diff:+.3f}, p={worst.p_value:.2g}) against baseline run #{baseline.pk}; "
                f"{len(flipped)} case(s) flipped from pass to fail"
            ),
            details=details,
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
