"""`manage.py finetune`: start a fine-tuning job of a suite's train split; with --wait, follow it and
the evaluation of its fine-tuned endpoint to the end. Exit 0 when it succeeded, 1 when the job (or
its evaluation run) failed or was cancelled, 2 on a usage error."""

from __future__ import annotations

import json
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from evaluations.management.commands.evaluate import MAX_WORKER_STARTS, START_HINT
from evaluations.models import Endpoint, FineTuneJob, FineTuneStatus, Run, RunStatus, Suite
from evaluations.selectors.runs import run_progress
from evaluations.services.finetune import FineTuneError, finetune_create

BACKENDS = ("local", "openai")
# option dest -> (hyperparameter, the backends it applies to)
HYPERPARAMETER_OPTIONS = {
    "epochs": ("epochs", BACKENDS),
    "batch_size": ("batch_size", BACKENDS),
    "seed": ("seed", BACKENDS),
    "learning_rate": ("learning_rate", ("local",)),
    "lr_multiplier": ("learning_rate_multiplier", ("openai",)),
    "suffix": ("suffix", ("openai",)),
}
TRAINING_HINT = "celery -A workers worker -Q training,llm,scoring"


def fail(message: str) -> CommandError:
    return CommandError(message, returncode=2)


def _option(dest: str) -> str:
    return {"lr_multiplier": "--lr-multiplier"}.get(dest, "--" + dest.replace("_", "-"))


class Command(BaseCommand):
    help = (
        "Fine-tune a base endpoint on a suite's train split (local LoRA, or an OpenAI-compatible "
        "fine-tuning API). With --wait, follow the job and then the evaluation of the fine-tuned "
        "endpoint; on embedded defaults a worker process is started for the duration when none runs."
    )

    def add_arguments(self, parser):
        parser.add_argument("--suite", required=True, help="suite name (its train split is the data)")
        parser.add_argument("--suite-version", type=int, default=None, help="suite version (default: latest)")
        parser.add_argument("--base", required=True, help="name of the base-model endpoint to fine-tune")
        parser.add_argument("--backend", choices=BACKENDS, default="local")
        parser.add_argument(
            "--source",
            default="train",
            help="what it trains on: train (the train split, default) | run:RUN:ARM[:all] (a labelling "
            "run's passing answers, or all of them: distillation from that teacher) | reviewed:RUN (what "
            "reviewers accepted or corrected) | several joined by ',' (a union, duplicates removed). "
            "ARM is the arm's id or its endpoint's name",
        )
        parser.add_argument("--epochs", type=int, default=None)
        parser.add_argument("--batch-size", type=int, default=None)
        parser.add_argument("--learning-rate", type=float, default=None, help="local backend")
        parser.add_argument(
            "--lr-multiplier", type=float, default=None, help="openai backend: learning_rate_multiplier"
        )
        parser.add_argument("--suffix", default=None, help="openai backend: the fine-tuned model's suffix")
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument("--wait", action="store_true", help="wait for the job and its evaluation")
        parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        parser.add_argument("--timeout", type=float, default=6 * 3600.0, help="seconds to wait with --wait")

    def handle(self, *args, **opts):
        backend = opts["backend"]
        suite = Suite.objects.filter(name=opts["suite"]).first()
        if suite is None:
            raise fail(f"--suite {opts['suite']!r}: no such suite (import one with import_suite)")
        versions = suite.versions.all()
        number = opts["suite_version"]
        version = versions.filter(number=number).first() if number else versions.first()
        if version is None:
            known = ", ".join(str(n) for n in versions.values_list("number", flat=True)) or "none"
            raise fail(f"suite {suite.name!r} has no version {number or ''} (versions: {known})")
        base = Endpoint.objects.filter(name=opts["base"]).first()
        if base is None:
            known = ", ".join(Endpoint.objects.filter(kind="base").values_list("name", flat=True)) or "none"
            raise fail(f"--base {opts['base']!r}: no such endpoint (base endpoints: {known})")
        hyperparameters = {}
        for dest, (name, backends) in HYPERPARAMETER_OPTIONS.items():
            if opts[dest] is None:
                continue
            if backend not in backends:
                raise fail(f"{_option(dest)} applies to the {' and '.join(backends)} backend, not {backend}")
            hyperparameters[name] = opts[dest]
        try:
            job = finetune_create(
                suite_version=version,
                base_endpoint=base,
                hyperparameters=hyperparameters,
                backend=backend,
                source=opts["source"],
            )
        except FineTuneError as exc:
            raise fail(str(exc)) from None
        source = job.source or {}
        teacher = f", teacher {source['teacher']}" if source.get("teacher") else ""
        self.stderr.write(
            f"fine-tune #{job.pk} queued ({backend}): {base.name} on {version}, {job.examples} examples "
            f"from {source.get('spec', 'train')}{teacher}"
        )
        run = None
        if opts["wait"]:
            job, run = self._wait(job, timeout=opts["timeout"])
        self._report(job, run, as_json=opts["json"])
        if job.status in (FineTuneStatus.FAILED, FineTuneStatus.CANCELLED):
            raise CommandError(
                f"fine-tune #{job.pk} ended {job.status}{': ' + job.error if job.error else ''}", returncode=1
            )
        if run is not None and run.status != RunStatus.SUCCEEDED:
            raise CommandError(
                f"fine-tune #{job.pk} succeeded but its evaluation run #{run.pk} ended {run.status}"
                f"{': ' + run.error if run.error else ''}",
                returncode=1,
            )

    # --- waiting ---

    def _wait(self, job: FineTuneJob, *, timeout: float) -> tuple[FineTuneJob, Run | None]:
        self._worker, self._worker_starts, self._told = None, 0, False
        self._worker_log = settings.DATA_DIR / "logs" / "finetune-worker.log"
        deadline = time.monotonic() + timeout
        try:
            job = self._poll_job(job, deadline)
            run = self._poll_run(job, deadline) if job.status == FineTuneStatus.SUCCEEDED else None
            return job, run
        except KeyboardInterrupt:
            raise fail(
                f"interrupted; fine-tune #{job.pk} goes on when a worker runs "
                "(cancel it on its page if it should not)"
            ) from None
        finally:
            self._stop_worker()

    def _needs_worker(self, queues: set[str]) -> bool:
        from evaluations.selectors.workers import live_workers

        if self._worker is not None and self._worker.poll() is not None:
            self.stderr.write(
                f"the worker this command started exited (code {self._worker.returncode}); "
                f"see {self._worker_log}"
            )
            self._worker = None
        if self._worker is not None:
            return False
        taken: set[str] = set()
        for beat in live_workers(queues=queues):
            named = {q for q in beat.queues.split(",") if q}
            if not named:
                return False
            taken |= named
        return not queues <= taken

    def _ensure_worker(self, what: str, queues: set[str]) -> None:
        """On embedded defaults, a worker of this command's own (workers/embedded.py, as
        `evaluate --wait` starts) whenever none takes the queues; with Redis, say how to start one."""
        if not self._needs_worker(queues):
            return
        if not settings.EMBEDDED:
            if not self._told:
                hint = TRAINING_HINT if "training" in queues else START_HINT
                self.stderr.write(f"no worker is running to take {what}; start one with: {hint}")
                self._told = True
            return
        from workers import embedded

        if self._worker_starts >= MAX_WORKER_STARTS:
            raise fail(
                f"the workers this command started exited {self._worker_starts} times; see {self._worker_log}"
            )
        self._worker_starts += 1
        self.stderr.write(f"no worker takes {what}: starting one for this command (log: {self._worker_log})")
        self._worker = embedded.start_worker(
            name=f"finetune-{what.split('#')[-1]}", log_path=self._worker_log
        )
        if not embedded.wait_until_ready(self._worker):
            self._stop_worker()
            raise fail(f"the worker did not start; see {self._worker_log}")

    def _stop_worker(self) -> None:
        from workers import embedded

        if getattr(self, "_worker", None) is not None:
            embedded.stop_worker(self._worker)
            self._worker = None

    def _say(self, line: str, last: str | None) -> str:
        """A progress line on stderr when it changed."""
        if line != last:
            self.stderr.write(line)
        return line

    def _poll_job(self, job: FineTuneJob, deadline: float) -> FineTuneJob:
        backend = job.backend
        last = None
        while True:
            job.refresh_from_db()
            line = f"fine-tune #{job.pk} {job.status}"
            if job.total_steps:
                line += f": step {job.step}/{job.total_steps}"
            tokens = job.trained_tokens
            if tokens:
                line += f", {tokens} trained tokens"
            if job.losses:
                line += f", loss {job.losses[-1]:.4f}"
            last = self._say(line, last)
            if job.is_finished:
                return job
            # A local job trains on the `training` queue; a hosted one is followed on `scoring`.
            self._ensure_worker(f"fine-tune #{job.pk}", {"training"} if backend == "local" else {"scoring"})
            if time.monotonic() > deadline:
                raise fail(
                    f"fine-tune #{job.pk} did not finish in time; it goes on when a worker runs "
                    "(cancel it on its page if it should not)"
                )
            time.sleep(0.5)

    def _poll_run(self, job: FineTuneJob, deadline: float) -> Run | None:
        job.refresh_from_db()
        if job.run_id is None:
            return None
        run = Run.objects.get(pk=job.run_id)
        self.stderr.write(f"fine-tune #{job.pk} succeeded; evaluating {job.endpoint} in run #{run.pk}")
        last = None
        while True:
            run.refresh_from_db()
            progress = run_progress(run)
            line = (
                f"run #{run.pk} {run.status}: {progress['results_done']}/{progress['results_total']} results"
            )
            last = self._say(line, last)
            if run.is_finished and (run.status != RunStatus.SUCCEEDED or run.analysed_at is not None):
                return run
            self._ensure_worker(f"run #{run.pk}", {"llm", "scoring"})
            if time.monotonic() > deadline:
                raise fail(
                    f"run #{run.pk} did not finish in time; it resumes when a worker runs "
                    "(cancel it on its page if it should not)"
                )
            time.sleep(0.5)

    # --- the answer ---

    def _report(self, job: FineTuneJob, run: Run | None, *, as_json: bool) -> None:
        job.refresh_from_db()
        endpoint = Endpoint.objects.filter(pk=job.endpoint_id).values_list("name", flat=True).first()
        payload = {
            "job_id": job.pk,
            "status": job.status,
            "backend": job.backend,
            "endpoint": endpoint,
            "trained_tokens": job.trained_tokens,
            "training_cost": job.training_cost,
            "data_cost": job.data_cost,
            "source": job.source,
            "run_id": job.run_id,
            "run_status": run.status if run is not None else None,
            "error": job.error,
        }
        if as_json:
            self.stdout.write(json.dumps(payload))
            return
        self.stdout.write(f"fine-tune #{job.pk} {job.status} ({payload['backend']})")
        if endpoint:
            cost = "—" if job.training_cost is None else f"${job.training_cost:.4f}"
            data = f" + training data ${job.data_cost:.4f}" if job.data_cost else ""
            self.stdout.write(f"  endpoint {endpoint}, training cost {cost}{data}")
        if job.run_id:
            self.stdout.write(f"  evaluation run #{job.run_id}{' ' + run.status if run else ''}")
        if job.error:
            self.stdout.write(f"  error: {job.error}")
