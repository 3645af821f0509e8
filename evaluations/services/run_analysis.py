"""What a succeeded run tells about its suite over time: trend points, the comparison with the
baseline (regressions), output drift and the score trend, then alerts for its findings (the
`analyse_run` task); and the claim of analyses whose message or worker was lost (recovery)."""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from evaluations.models import Run, RunStatus, run_is_evidence
from evaluations.services.alerts import findings_notify
from evaluations.services.drift import run_drift
from evaluations.services.findings import run_compare_with_baseline
from evaluations.services.secrets import redactor
from evaluations.services.trends import trends_record

log = logging.getLogger(__name__)

RECOVER_LIMIT = 200  # runs re-sent for analysis per sweep


def run_analyse(*, run_id: int) -> bool:
    """What a succeeded run tells about the suite over time, in order: its trend points, the comparison
    with the baseline (regressions), output drift and the score trend, then alerts for its findings.

    Idempotent (every step updates in place), so a redelivered task or a re-score just runs it again.
    A step that fails does not stop the others: its error is kept on the run (`analysis_error`), the
    findings the other steps made are still sent, and `evaluate` reports it."""
    run = Run.objects.select_related("suite_version__suite").filter(pk=run_id).first()
    if run is None or run.status != RunStatus.SUCCEEDED:
        return False
    if not run_is_evidence(run):  # a labelling or captured run: reviewed, trained on, never a finding
        Run.objects.filter(pk=run.pk).update(analysed_at=timezone.now(), analysis_error="")
        return True
    steps = (
        ("trends", trends_record),  # the figures the trends page charts, stored once
        ("baseline comparison", run_compare_with_baseline),  # regressions against the baseline
        ("drift", run_drift),  # output drift against the baseline, and the score trend
    )
    errors = []
    redact = redactor()  # read before the steps: a failing step's error is masked without a query
    for name, step in steps:
        try:  # no transaction around a step: drift embeds outputs, and must not hold the database
            step(run=run)
        except Exception as exc:  # one failing step must not hide the findings of the others
            log.exception("analysis of run #%s: the %s step failed", run.pk, name)
            errors.append(redact(f"{name}: {type(exc).__name__}: {exc}")[:500])
    with transaction.atomic():
        findings_notify(run=run)  # alerts for the run's open findings, each sent once per channel
        Run.objects.filter(pk=run.pk).update(analysed_at=timezone.now(), analysis_error="\n".join(errors))
    return not errors


def runs_unanalysed_before(cutoff) -> list[int]:
    """Claim succeeded runs whose analysis was sent before `cutoff` and never finished (its message
    lost, its worker killed): each is claimed by a conditional update of its lease, so the sweeps of
    several workers send it once, and again only once the new lease has gone stale too."""
    candidates = Run.objects.filter(status=RunStatus.SUCCEEDED, analysed_at__isnull=True).filter(
        Q(analysis_sent_at__lt=cutoff) | Q(analysis_sent_at__isnull=True, finished_at__lt=cutoff)
    )
    claimed = []
    now = timezone.now()
    for run_id, sent_at in candidates.values_list("id", "analysis_sent_at")[:RECOVER_LIMIT]:
        if Run.objects.filter(pk=run_id, analysed_at__isnull=True, analysis_sent_at=sent_at).update(
            analysis_sent_at=now
        ):
            claimed.append(run_id)
    return claimed
