"""Reads of runs: arm summaries (stored, or live while a run goes), progress, results, recent runs."""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Q, QuerySet

from evaluations import retrieval, strategies
from evaluations.analysis import pairwise
from evaluations.analysis.summary import Row, summarise
from evaluations.models import Arm, Batch, Result, Run, Scoring, expected_as_list

log = logging.getLogger(__name__)


def arm_summaries(run: Run) -> dict[int, dict]:
    """Aggregates for each arm of the run, computed from its results (live while it runs)."""
    version = run.suite_version
    suite = version.suite
    rows: dict[int, list[Row]] = {arm_id: [] for arm_id in run.arms.values_list("id", flat=True)}
    pairwise_rows: dict[int, list] = {arm_id: [] for arm_id in rows}  # (case, scores) with a pairwise check
    fields = (
        "arm_id", "case_id", "score", "passed", "error", "cost", "prompt_tokens", "completion_tokens",
        "latency_ms", "scores", "case__expected", "scored_at", "sample", "answer", "compute_seconds",
    )  # fmt: skip
    for r in Result.objects.filter(arm__run=run).values_list(*fields).iterator(chunk_size=2000):
        (
            arm_id,
            case_id,
            score,
            passed,
            error,
            cost,
            pt,
            ct,
            lat,
            scores,
            expected,
            scored_at,
            sample,
            answer,
            compute_seconds,
        ) = r
        if scores and any(isinstance(c, dict) and "pairwise" in c for c in scores.get("assertions") or ()):
            pairwise_rows[arm_id].append((case_id, scores))
        predicted = (scores or {}).get("predicted")
        acceptable = [e.strip() for e in expected_as_list(expected) if e.strip()]
        # With several acceptable labels, a prediction among them is the case's label (as scored).
        expected_label = predicted if predicted in acceptable else (acceptable[0] if acceptable else None)
        rows[arm_id].append(
            Row(
                case_id=case_id,
                score=score,
                passed=passed,
                error=bool(error),
                cost=cost or 0.0,
                prompt_tokens=pt,
                completion_tokens=ct,
                latency_ms=lat,
                expected_label=expected_label,
                predicted_label=predicted,
                scored=scored_at is not None,
                sample=sample,
                answer=answer,
                format_ok=_format_ok(scores),
                compute_seconds=compute_seconds,
            )
        )
    summaries = {
        arm_id: summarise(
            arm_rows,
            task_type=version.task_type,
            labels=list(version.labels),
            monthly_volume=suite.monthly_volume,
        )
        for arm_id, arm_rows in rows.items()
    }
    for arm_id, metrics in _retrieval_summaries(run).items():
        summaries[arm_id]["retrieval"] = metrics
    for arm_id, judged in pairwise_rows.items():
        rates = pairwise.summarise(judged) if judged else {}  # win rate, CI, parity (analysis/pairwise.py)
        if rates:
            summaries[arm_id]["pairwise"] = rates
    return summaries


def _retrieval_summaries(run: Run) -> dict[int, dict]:
    """The retrieval arms' recall@k and MRR against the cases' `metadata.gold_docs` (first sample
    of each case: retrieval depends on the input alone)."""
    arms = {
        arm_id: params
        for arm_id, kind, params in run.arms.values_list("id", "strategy__kind", "strategy__params")
        if kind in strategies.RAG_KINDS
    }
    pairs: dict[int, list] = {arm_id: [] for arm_id in arms}
    got = Result.objects.filter(arm_id__in=arms, sample=0).values_list(
        "arm_id", "retrieved", "case__metadata"
    )
    for arm_id, retrieved, metadata in got.iterator(chunk_size=2000):
        docs = [str(hit.get("doc")) for hit in retrieved or [] if isinstance(hit, dict)]
        pairs[arm_id].append((docs, retrieval.gold_docs(metadata)))
    return {
        arm_id: retrieval.retrieval_metrics(pairs[arm_id], k=_int_or_none((params or {}).get("k", 3)))
        for arm_id, params in arms.items()
    }


def _int_or_none(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _format_ok(scores: dict | None) -> bool | None:
    """Whether the output had the required format (an is-json assertion), when one was checked."""
    for check in (scores or {}).get("assertions", []):
        if check.get("type") == "is-json":
            return bool(check.get("passed"))
    return None


def run_live_counts(run: Run) -> dict[str, int]:
    """The run's results so far: how many, how many scored, how many errors (one query).

    While the run is unfinished the figures are kept FTVP_LIVE_SECONDS (2 s, the live page's poll
    interval) in the process's cache: every user watching a big run polls its live part, and each
    count scans the run's results, so one count per interval serves them all."""
    key = f"ftvp:live-counts:{run.pk}:{run.status}"
    ttl = settings.FTVP_LIVE_SECONDS
    if not run.is_finished and ttl:
        counts = cache.get(key)
        if counts is not None:
            return counts
    counts = Result.objects.filter(arm__run=run).aggregate(
        n=Count("id"),
        scored=Count("id", filter=Q(scored_at__isnull=False)),
        errors=Count("id", filter=~Q(error="")),
    )
    if not run.is_finished and ttl:
        cache.set(key, counts, timeout=ttl)
    return counts


def run_arms_with_summaries(run: Run) -> list[tuple[Arm, dict]]:
    """Stored summaries of a finalized run; else live ones (see _live_summaries)."""
    arms = list(run.arms.select_related("endpoint", "strategy").order_by("position"))
    if run.is_finished and all(a.summary for a in arms):
        return [(a, a.summary) for a in arms]
    live = _live_summaries(run, run_live_counts(run))
    return [(a, live.get(a.pk, {})) for a in arms]


_refreshing: set[int] = set()  # runs whose live summaries this process is computing in the background
_refreshing_lock = threading.Lock()


def _live_summaries(run: Run, counts: dict[str, int]) -> dict[int, dict]:
    """A running run's arm summaries, computed from its results (a quarter of a second for 10,000).

    Stale-while-revalidate: the figures are recomputed when the run's results changed, at most once
    per FTVP_LIVE_SECONDS per process, in a background thread, while every request meanwhile gets
    the last figures (a few seconds old on a page that polls every 2 s). The first view of a run,
    figures older than 10 intervals, a finished run, or FTVP_LIVE_SECONDS=0 compute them in the
    request."""
    key = f"ftvp:live-summaries:{run.pk}"
    marker = (run.status, counts["n"], counts["scored"])
    ttl = settings.FTVP_LIVE_SECONDS
    entry = cache.get(key)  # (marker, computed at, summaries)
    if entry is not None and entry[0] == marker:
        return entry[2]
    # Stale figures are served only for a run still going, of the same status, and a few intervals
    # old at most; a finished run (cancelled or failed: finalize stored nothing) is computed at once.
    age = time.monotonic() - entry[1] if entry is not None else None
    usable = entry is not None and ttl and not run.is_finished and entry[0][0] == run.status
    if usable and age < ttl:
        return entry[2]
    if not usable or age > 10 * ttl:
        live = arm_summaries(run)
        cache.set(key, (marker, time.monotonic(), live), timeout=600)
        return live
    with _refreshing_lock:
        start = run.pk not in _refreshing
        _refreshing.add(run.pk)
    if start:
        try:
            threading.Thread(
                target=_refresh_live_summaries, args=(run.pk, key, marker), name=f"live-{run.pk}", daemon=True
            ).start()
        except RuntimeError:  # no thread to be had: the next poll tries again
            with _refreshing_lock:
                _refreshing.discard(run.pk)
    return entry[2]


def _refresh_live_summaries(run_id: int, key: str, marker: tuple) -> None:
    try:
        run = Run.objects.select_related("suite_version__suite").get(pk=run_id)
        cache.set(key, (marker, time.monotonic(), arm_summaries(run)), timeout=600)
    except Exception:  # the next poll tries again; the page keeps the last figures meanwhile
        log.warning("live summaries of run #%s failed", run_id, exc_info=True)
    finally:
        with _refreshing_lock:
            _refreshing.discard(run_id)
        connection.close()  # this thread's own connection


def run_progress(run: Run) -> dict:
    counts = run_live_counts(run)
    done = counts["n"]
    generated = Batch.objects.filter(run=run, generated_at__isnull=False).count()
    total = run.expected_results or 1
    return {
        "status": run.status,
        "results_done": done,
        "results_total": run.expected_results,
        "errors": counts["errors"],
        "batches_total": run.batches_total,
        "batches_generated": generated,
        "batches_scored": run.batches_scored,
        "percent": round(100.0 * min(done, total) / total, 1),
        "finished": run.is_finished,
    }


def results_for_run(
    run: Run, *, arm_id: int | None = None, outcome: str = "", query: str = ""
) -> QuerySet[Result]:
    qs = Result.objects.filter(arm__run=run).select_related("case", "arm__endpoint", "arm__strategy")
    if arm_id:
        qs = qs.filter(arm_id=arm_id)
    if outcome == "pass":
        qs = qs.filter(passed=True)
    elif outcome == "fail":
        qs = qs.filter(passed=False, error="")
    elif outcome == "error":
        qs = qs.exclude(error="")
    elif outcome == "pending":
        qs = qs.filter(scored_at__isnull=True)
    if query:
        qs = qs.filter(
            Q(output__icontains=query) | Q(case__key__icontains=query) | Q(answer__icontains=query)
        )
    return qs.order_by("case__position", "arm__position", "sample")


def results_by_pk(ids: list[int]) -> list[Result]:
    """The results with these ids, in this order, with their case and arm (one query; none for no ids)."""
    found = Result.objects.select_related("case", "arm__endpoint", "arm__strategy").in_bulk(ids)
    return [found[pk] for pk in ids if pk in found]


def recent_runs(limit: int = 50) -> QuerySet[Run]:
    return (
        Run.objects.select_related("suite_version__suite")
        .annotate(arm_count=Count("arms", distinct=True))
        .order_by("-created_at", "-id")[:limit]
    )


def run_delete_refusal(run: Run) -> str | None:
    """Why the run may not be deleted, or None when it may: a signed-off run is kept for good; the
    suite's current baseline, a run not finished and a run with a pending sign-off are locked."""
    suite = run.suite_version.suite
    if run.signed_off_at is not None:
        return f"run #{run.pk} is signed off: it is kept for good and cannot be deleted"
    if suite.baseline_run_id == run.pk:
        return (
            f"run #{run.pk} is the baseline of suite {suite.name!r}: make another run the baseline "
            "before deleting it"
        )
    if not run.is_finished:
        return f"run #{run.pk} is {run.status}: cancel it first, then delete it"
    if run.signoffs.filter(status="pending").exists():
        return f"run #{run.pk} has a pending sign-off request: withdraw or reject it first"
    return None


def current_scoring(run_id: int) -> Scoring | None:
    # scoring_apply reads the run's suite version and suite: one query, not three per batch.
    return (
        Scoring.objects.filter(run_id=run_id)
        .select_related("run__suite_version__suite")
        .order_by("-number")
        .first()
    )


def run_rescoring(run: Run) -> bool:
    """Whether a re-score of the run is under way: its scores are about to change."""
    return run.scorings.filter(finished_at__isnull=True, trigger=Scoring.Trigger.RESCORE).exists()


def scorings_unfinished_before(cutoff) -> list[int]:
    return list(
        Scoring.objects.filter(
            finished_at__isnull=True, trigger=Scoring.Trigger.RESCORE, created_at__lt=cutoff
        ).values_list("id", flat=True)
    )
