"""Thin tasks: take ids, call a service. Each is idempotent, acks late and never waits on another."""

from __future__ import annotations

from celery import shared_task

from evaluations.services import alerts, fewshot_optimize, generation, run_analysis, runs, schedules, scorings
from evaluations.services import finetune as finetunes
from evaluations.services import shadow as shadows
from evaluations.services import synthetic as synthetics


@shared_task(name="workers.tasks.start_run", acks_late=True)
def start_run(run_id: int) -> None:
    runs.run_start(run_id=run_id)


@shared_task(name="workers.tasks.run_batch", acks_late=True)
def run_batch(batch_id: int) -> None:
    generation.batch_generate(batch_id=batch_id)


@shared_task(name="workers.tasks.score_batch", acks_late=True)
def score_batch(batch_id: int) -> None:
    runs.batch_score(batch_id=batch_id)


@shared_task(name="workers.tasks.rescore_run", acks_late=True)
def rescore_run(scoring_id: int) -> None:
    scorings.scoring_execute(scoring_id=scoring_id)


@shared_task(name="workers.tasks.finalize_run", acks_late=True)
def finalize_run(run_id: int) -> None:
    runs.run_finalize(run_id=run_id)


@shared_task(name="workers.tasks.analyse_run", acks_late=True)
def analyse_run(run_id: int) -> None:
    run_analysis.run_analyse(run_id=run_id)


@shared_task(name="workers.tasks.finetune", acks_late=True)
def finetune(job_id: int) -> None:
    finetunes.finetune_execute(job_id=job_id)


@shared_task(name="workers.tasks.finetune_poll", acks_late=True)
def finetune_poll(job_id: int, attempt: int = 0) -> None:
    """A hosted fine-tuning job: submitted (once), then followed; re-sent with a countdown until final."""
    finetunes.finetune_poll(job_id=job_id, attempt=attempt)


@shared_task(name="workers.tasks.send_alert", acks_late=True)
def send_alert(delivery_id: int) -> None:
    alerts.alert_send(delivery_id=delivery_id)


@shared_task(name="workers.tasks.scheduled_run", acks_late=True)
def scheduled_run(schedule_id: int) -> None:
    """Sent by celery beat (a PeriodicTask per schedule); a second delivery for one slot is skipped."""
    schedules.schedule_fire(schedule_id=schedule_id)


@shared_task(name="workers.tasks.optimize_fewshot", acks_late=True)
def optimize_fewshot(
    suite_id: int,
    endpoint_id: int,
    k: int,
    candidates: int,
    dev_size: int,
    seed: int,
    name: str,
    user_id: int | None,
    request_id: str,
) -> None:
    """The optimised few-shot search of a suite (POST /api/v1/strategies/optimize/): once per request."""
    fewshot_optimize.strategy_optimize_execute(
        suite_id=suite_id, endpoint_id=endpoint_id, k=k, candidates=candidates, dev_size=dev_size, seed=seed,
        name=name, user_id=user_id, request_id=request_id,
    )  # fmt: skip


@shared_task(name="workers.tasks.synthesize", acks_late=True)
def synthesize(generation_id: int) -> None:
    """A synthetic-examples generation (docs/finetuning.md): claimed once, however often delivered."""
    synthetics.synthetic_execute(generation_id=generation_id)


@shared_task(name="workers.tasks.shadow_sweep", acks_late=True)
def shadow_sweep(config_id: int) -> None:
    """Shadow evaluation (docs/capture.md): the configuration's next live calls sent to its candidate."""
    shadows.shadow_sweep(config_id=config_id)
