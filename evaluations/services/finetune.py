"""Fine-tuning jobs: LoRA on a local base model, trained on a suite's train split by a worker on the
`training` queue; on success a fine-tuned endpoint is registered and evaluated next to the base
model's prompting ladder, so the suite's decision page answers without another click."""

from __future__ import annotations

import json
import logging
import shutil
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from evaluations import strategies
from evaluations.analysis.costs import compute_cost
from evaluations.models import (
    Endpoint,
    EndpointKind,
    FineTuneJob,
    FineTuneStatus,
    Provider,
    Run,
    Split,
    Strategy,
    SuiteVersion,
)
from evaluations.selectors.strategies import optimized_strategy
from evaluations.services import queue
from evaluations.services.audit import audit_record
from evaluations.services.endpoints import endpoint_create
from evaluations.services.leases import heartbeat
from evaluations.services.runs import run_create
from evaluations.services.secrets import redact_stored
from evaluations.training import Hyperparameters, TrainingCancelled, TrainingError, train_lora

log = logging.getLogger(__name__)

MIN_EXAMPLES = 4
# The base model's prompting ladder, evaluated next to the new fine-tuned endpoint; with knowledge
# documents, retrieval on the base model and on the fine-tuned one as well; with a frozen optimised
# few-shot strategy for the suite, that too (docs/decision.md, the ladder).
LADDER_STRATEGIES = ("zero-shot", "few-shot", "few-shot-nearest", "system", "cot", "structured")
RETRIEVAL_STRATEGY = "rag"


class FineTuneError(ValueError):
    pass


def finetune_examples(version: SuiteVersion) -> list[tuple[list[dict], str]]:
    """(messages, answer) pairs from the train split: the input as the `plain` strategy sends it
    (what the fine-tuned endpoint is evaluated with), the first acceptable expected output."""
    ctx = strategies.RenderContext(task_type=version.task_type, labels=tuple(version.labels))
    pairs = []
    rows = version.cases.filter(split=Split.TRAIN).order_by("position").values_list("input", "expected")
    for case_input, expected in rows:
        answer = expected[0] if isinstance(expected, list) and expected else expected
        if isinstance(answer, dict | list):  # a JSON suite's expected object
            answer = json.dumps(answer, ensure_ascii=False, sort_keys=True)
        if answer is None or not str(answer).strip():
            continue
        pairs.append((strategies.render("plain", case_input, ctx), str(answer)))
    return pairs


def adapter_dir(job: FineTuneJob) -> Path:
    return Path(settings.MEDIA_ROOT) / job.adapter


@transaction.atomic
def finetune_create(
    *,
    suite_version: SuiteVersion,
    base_endpoint: Endpoint,
    hyperparameters: dict | None = None,
    user=None,
) -> FineTuneJob:
    """Validate and queue a fine-tuning job (nothing is written when anything is wrong)."""
    if base_endpoint.provider != Provider.LOCAL or base_endpoint.kind != EndpointKind.BASE:
        raise FineTuneError(
            f"endpoint {base_endpoint.name!r} is not a local base model: ftvp fine-tunes local models; "
            "for a hosted model, export the train split as fine-tuning JSONL, fine-tune it with its "
            "provider and register the result as a fine_tuned endpoint with its training cost"
        )
    try:
        hp = Hyperparameters.from_dict(hyperparameters)
    except TrainingError as exc:
        raise FineTuneError(str(exc)) from None
    n = len(finetune_examples(suite_version))
    if n < MIN_EXAMPLES:
        raise FineTuneError(
            f"{suite_version} has {n} train case(s) with an expected output; fine-tuning needs at least "
            f"{MIN_EXAMPLES} (upload cases with split=train)"
        )
    job = FineTuneJob.objects.create(
        suite_version=suite_version,
        base_endpoint=base_endpoint,
        hyperparameters=hp.to_dict(),
        examples=n,
        created_by=user,
    )
    job.adapter = f"adapters/finetune-{job.pk}"
    job.save(update_fields=["adapter"])
    audit_record(
        actor=user,
        action="finetune.create",
        obj=job,
        suite_id=suite_version.suite_id,
        after={
            "suite_version": suite_version.number,
            "base_endpoint": base_endpoint.name,
            "examples": n,
            "hyperparameters": job.hyperparameters,
        },
    )
    queue.enqueue("finetune", job.pk)
    return job


@transaction.atomic
def finetune_cancel(*, job_id: int, user=None) -> bool:
    """Stop a queued or training job; the worker notices at its next step and deletes the adapter.
    False when it had already finished (nothing changed, nothing recorded)."""
    live = FineTuneJob.objects.filter(pk=job_id, status__in=[FineTuneStatus.QUEUED, FineTuneStatus.RUNNING])
    job = live.select_for_update(of=("self",)).select_related("suite_version", "base_endpoint").first()
    if job is None or not live.update(status=FineTuneStatus.CANCELLED, finished_at=timezone.now()):
        return False
    audit_record(
        actor=user,
        action="finetune.cancel",
        obj=job,
        suite_id=job.suite_version.suite_id,
        before={"status": job.status},
        after={"status": FineTuneStatus.CANCELLED},
    )
    return True


def finetune_execute(*, job_id: int) -> None:
    """Train the job's adapter (once: the job is claimed with a conditional UPDATE), then register
    the fine-tuned endpoint and start its evaluation."""
    now = timezone.now()
    claimed = FineTuneJob.objects.filter(pk=job_id, status=FineTuneStatus.QUEUED).update(
        status=FineTuneStatus.RUNNING, started_at=now, heartbeat_at=now
    )
    if not claimed:
        return
    job = FineTuneJob.objects.select_related("base_endpoint", "suite_version__suite").get(pk=job_id)
    out = adapter_dir(job)
    losses: list[float] = []

    def progress(p) -> bool:
        losses.append(round(p.loss, 5))
        # Every step: progress and the loss curve for the page, the heartbeat, and whether to go on.
        return bool(
            FineTuneJob.objects.filter(pk=job_id, status=FineTuneStatus.RUNNING).update(
                step=p.step, total_steps=p.total_steps, losses=losses, heartbeat_at=timezone.now()
            )
        )

    alive = FineTuneJob.objects.filter(pk=job_id, status=FineTuneStatus.RUNNING)
    try:
        with heartbeat(alive, name=f"finetune-{job_id}"):  # loading the model takes a while too
            result = train_lora(
                base_model=job.base_endpoint.model,
                examples=finetune_examples(job.suite_version),
                out_dir=out,
                hp=Hyperparameters.from_dict(job.hyperparameters),
                progress=progress,
            )
    except TrainingCancelled:
        shutil.rmtree(out, ignore_errors=True)
        log.info("fine-tune #%s cancelled", job_id)
        return
    except Exception as exc:  # a failed job says why, and leaves nothing behind
        log.exception("fine-tune #%s failed", job_id)
        _fail(job_id, out, exc)
        return
    try:
        job, endpoint, run = _register(job_id, result, losses, out)
    except Exception as exc:  # e.g. missing strategies: say so rather than look like a dead worker
        log.exception("fine-tune #%s trained but could not be registered", job_id)
        _fail(job_id, out, exc)
        return
    if job is not None:
        log.info(
            "fine-tune #%s trained in %.1fs; endpoint %s, run #%s",
            job_id,
            result.seconds,
            endpoint.name,
            run.pk,
        )


def _fail(job_id: int, out: Path, exc: Exception) -> None:
    shutil.rmtree(out, ignore_errors=True)
    FineTuneJob.objects.filter(pk=job_id, status=FineTuneStatus.RUNNING).update(
        status=FineTuneStatus.FAILED,
        error=redact_stored(f"{type(exc).__name__}: {exc}")[:2000],
        finished_at=timezone.now(),
    )


@transaction.atomic
def _register(job_id: int, result, losses: list[float], out: Path):
    """Register the fine-tuned endpoint and start its evaluation, once, unless cancelled meanwhile."""
    job = FineTuneJob.objects.select_for_update().select_related("base_endpoint").get(pk=job_id)
    if job.status != FineTuneStatus.RUNNING:  # cancelled during the last step
        transaction.on_commit(lambda: shutil.rmtree(out, ignore_errors=True))
        return None, None, None
    base = job.base_endpoint
    cost = compute_cost(result.seconds, float(base.price_hour))
    endpoint = endpoint_create(
        name=_endpoint_name(base, job),
        provider=Provider.LOCAL,
        model=base.model,
        kind=EndpointKind.FINE_TUNED,
        base_endpoint=base,
        price_in=base.price_in,
        price_out=base.price_out,
        price_hour=base.price_hour,
        training_cost=f"{cost:.4f}",
        adapter=job.adapter,
        max_concurrency=base.max_concurrency,
        timeout_seconds=base.timeout_seconds,
        params=dict(base.params or {}),
    )
    run = run_create(
        suite_version=job.suite_version,
        arms=_evaluation_arms(base, endpoint, job.suite_version),
        user=job.created_by,
    )
    job.status = FineTuneStatus.SUCCEEDED
    job.finished_at = timezone.now()
    job.compute_seconds = result.seconds
    job.training_cost = cost
    job.endpoint = endpoint
    job.run = run
    job.step = job.total_steps = result.steps
    job.losses = losses
    job.save()
    return job, endpoint, run


@transaction.atomic
def finetune_evaluate(*, job: FineTuneJob, user=None) -> Run:
    """Evaluate a succeeded job's endpoint again, next to its base model's ladder (e.g. when its
    first evaluation was cancelled or failed)."""
    if job.status != FineTuneStatus.SUCCEEDED or job.endpoint is None:
        raise FineTuneError(f"fine-tune #{job.pk} has no fine-tuned endpoint to evaluate")
    run = run_create(
        suite_version=job.suite_version,
        arms=_evaluation_arms(job.base_endpoint, job.endpoint, job.suite_version),
        user=user,
    )
    FineTuneJob.objects.filter(pk=job.pk).update(run=run)
    job.run = run
    return run


def finetunes_recover(*, startup: bool = False) -> dict[str, int]:
    """Jobs whose worker is gone: a training job whose heartbeat went stale fails (training restarts
    from scratch; start a new job), and a job queued for too long (or any, when a worker starts)
    gets its message again (the claim makes a duplicate harmless)."""
    stale_before = timezone.now() - timedelta(seconds=settings.FTVP_STALL_SECONDS)
    counts = {"failed": 0, "requeued": 0}
    for job_id, adapter in FineTuneJob.objects.filter(
        status=FineTuneStatus.RUNNING, heartbeat_at__lt=stale_before
    ).values_list("id", "adapter"):
        failed = FineTuneJob.objects.filter(
            pk=job_id, status=FineTuneStatus.RUNNING, heartbeat_at__lt=stale_before
        ).update(
            status=FineTuneStatus.FAILED,
            error="the worker training it stopped (no progress for "
            f"{settings.FTVP_STALL_SECONDS} s); start a new job",
            finished_at=timezone.now(),
        )
        if failed:
            shutil.rmtree(Path(settings.MEDIA_ROOT) / adapter, ignore_errors=True)
            counts["failed"] += 1
    queued = FineTuneJob.objects.filter(status=FineTuneStatus.QUEUED)
    if not startup:
        # Behind a training job (the trainer takes one at a time) a queued job is only waiting.
        if FineTuneJob.objects.filter(status=FineTuneStatus.RUNNING).exists():
            queued = queued.none()
        queued = queued.filter(created_at__lt=stale_before)
    for job_id in queued.values_list("id", flat=True):
        queue.enqueue("finetune", job_id)
        counts["requeued"] += 1
    return counts


def _evaluation_arms(
    base: Endpoint, tuned: Endpoint, version: SuiteVersion
) -> list[tuple[Endpoint, Strategy]]:
    by_name = {s.name: s for s in Strategy.objects.filter(version=1, name__in=[*LADDER_STRATEGIES, "plain"])}
    missing = [n for n in (*LADDER_STRATEGIES, "plain") if n not in by_name]
    if missing:
        raise FineTuneError(f"built-in strategies missing: {', '.join(missing)} (run migrate)")
    arms = [(base, by_name[n]) for n in LADDER_STRATEGIES]
    optimized = optimized_strategy(version)  # only one searched on this version's train cases
    if optimized is not None:
        arms.append((base, optimized))
    rag = Strategy.objects.filter(version=1, name=RETRIEVAL_STRATEGY).first()
    retrieval = rag is not None and version.chunks.exists()
    if retrieval:
        arms.append((base, rag))
    arms.append((tuned, by_name["plain"]))
    if retrieval:
        arms.append((tuned, rag))
    return arms


def _endpoint_name(base: Endpoint, job: FineTuneJob) -> str:
    name = f"{base.name}-ft{job.pk}"
    n = 1
    while Endpoint.objects.filter(name=name).exists():
        n += 1
        name = f"{base.name}-ft{job.pk}-{n}"
    return name
