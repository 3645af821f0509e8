"""Fine-tuning jobs on a suite's train split, with one of two backends:

- `local`: LoRA (or QLoRA on a CUDA worker) of a local base model, trained by a worker on the
  `training` queue (`finetune_execute`);
- `openai`: the base endpoint's OpenAI-compatible fine-tuning API (OpenAI, Azure OpenAI, the open
  servers that copy it): the train split uploaded as chat JSONL, one job created, then followed by
  the `finetune_poll` task, re-sent with a growing countdown until the job is final
  (docs/finetuning.md, the hosted path).

Either way the job refuses to start when a test case's input is also a train case's (the leakage
guard), and on success a fine-tuned endpoint is registered and evaluated next to the base model's
prompting ladder, so the suite's decision page answers without another click."""

from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from evaluations.analysis.costs import compute_cost
from evaluations.models import (
    Endpoint,
    EndpointKind,
    FineTuneBackend,
    FineTuneJob,
    FineTuneStatus,
    Provider,
    Run,
    Split,
    Strategy,
    SuiteVersion,
)
from evaluations.providers.base import ProviderError
from evaluations.providers.finetune_api import FINAL_STATUSES, FineTuneApiError, FineTuneClient
from evaluations.selectors.strategies import optimized_strategy
from evaluations.selectors.training_data import (
    Row,
    TrainingSet,
    TrainingSourceError,
    normalised_input,
    training_set,
)
from evaluations.services import queue
from evaluations.services.audit import audit_record
from evaluations.services.endpoints import base_url_check, endpoint_api_key, endpoint_create
from evaluations.services.leases import heartbeat
from evaluations.services.runs import run_create
from evaluations.services.secrets import redact_stored, redactor
from evaluations.training import (
    Hyperparameters,
    TrainingCancelled,
    TrainingError,
    qlora_unavailable,
    train_lora,
)

log = logging.getLogger(__name__)

MIN_EXAMPLES = 4
# The OpenAI fine-tuning API refuses a training file of fewer than 10 examples.
MIN_HOSTED_EXAMPLES = 10
# The base model's prompting ladder, evaluated next to the new fine-tuned endpoint; with knowledge
# documents, retrieval on the base model and on the fine-tuned one as well; with a frozen optimised
# few-shot strategy for the suite, that too (docs/decision.md, the ladder).
LADDER_STRATEGIES = ("zero-shot", "few-shot", "few-shot-nearest", "system", "cot", "structured")
RETRIEVAL_STRATEGY = "rag"


BACKENDS = tuple(FineTuneBackend.values)
# The hosted poller: the first look soon after a change, then less often while nothing changes.
POLL_MAX_SECONDS = 300.0
MAX_EVENTS = 500  # the newest events kept on the job (a long job logs thousands of steps)
MAX_CHECKPOINTS = 2000
TRAINING_FILE = "training.jsonl"  # a local job's examples, as chat JSONL beside its adapter


class FineTuneError(ValueError):
    pass


def _train_rows(version: SuiteVersion, source: str | None = None) -> list[Row]:
    """The examples of the job's training source (default: the train split), in order."""
    try:
        return training_set(version, source).rows
    except TrainingSourceError as exc:
        raise FineTuneError(str(exc)) from None


def finetune_examples(version: SuiteVersion, source: str | None = None) -> list[tuple[list[dict], str]]:
    """(messages, answer) pairs of the training source: the input as the `plain` strategy sends it
    (what the fine-tuned endpoint is evaluated with), the source's target answer."""
    return [(row.messages, row.answer) for row in _train_rows(version, source)]


# -- the leakage guard -------------------------------------------------------------------------------


def finetune_leaks(version: SuiteVersion, train_rows=None) -> list[tuple[str, str]]:
    """(test case key, train case key) for every test case whose input (normalised) is the input of
    a train case the fine-tune would learn from: the model would be scored on what it was taught."""
    rows = _train_rows(version) if train_rows is None else train_rows
    trained: dict[str, str] = {}
    for row in rows:
        trained.setdefault(normalised_input(row.input), row.key)
    if not trained:
        return []
    leaks = []
    tests = version.cases.filter(split=Split.TEST).order_by("position").values_list("key", "input")
    for key, case_input in tests:
        train_key = trained.get(normalised_input(case_input))
        if train_key is not None:
            leaks.append((key, train_key))
    return leaks


def _leak_check(version: SuiteVersion, rows) -> None:
    leaks = finetune_leaks(version, rows)
    if not leaks:
        return
    shown = ", ".join(f"{test} (= train {train})" for test, train in leaks[:20])
    more = f" and {len(leaks) - 20} more" if len(leaks) > 20 else ""
    raise FineTuneError(
        f"{len(leaks)} test case(s) have the same input as a train case (compared normalised: case, "
        f"spacing and Unicode forms ignored): {shown}{more}; the fine-tuned model would be scored on "
        "what it was trained on. Remove them from one split (a new suite version) and start again"
    )


# -- the hosted backend's hyperparameters -----------------------------------------------------------

_SUFFIX = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class HostedHyperparameters:
    """What the openai backend sends: None leaves a value to the provider ("auto")."""

    epochs: int | None = None
    batch_size: int | None = None
    learning_rate_multiplier: float | None = None
    suffix: str = ""
    seed: int | None = None
    # The share of the train split (its last cases) sent as the validation file; 0 sends none.
    validation_fraction: float = 0.1

    LIMITS = {"epochs": (1, 50), "batch_size": (1, 256), "seed": (0, 2**31 - 1)}

    @classmethod
    def from_dict(cls, values: dict | None) -> HostedHyperparameters:
        values = dict(values or {})
        known = [f for f in cls.__dataclass_fields__ if f != "LIMITS"]
        unknown = sorted(str(k) for k in set(values) - set(known))
        if unknown:
            raise FineTuneError(
                f"unknown hyperparameter(s) for the openai backend: {', '.join(unknown)}; "
                f"known: {', '.join(known)}"
            )
        out: dict = {}
        for name, value in values.items():
            if value is None or value == "":
                continue
            if name == "suffix":
                if not isinstance(value, str) or not _SUFFIX.match(value.strip()):
                    raise FineTuneError(f"suffix: {value!r}: up to 64 letters, digits, - and _")
                out[name] = value.strip()
                continue
            if isinstance(value, bool):
                raise FineTuneError(f"{name}: {value!r} is not a number")
            kind = float if name in ("learning_rate_multiplier", "validation_fraction") else int
            try:
                number = kind(value)
            except (TypeError, ValueError):
                raise FineTuneError(f"{name}: {value!r} is not a number") from None
            if kind is int and isinstance(value, float) and value != int(value):
                raise FineTuneError(f"{name}: {value!r} is not a whole number")
            if name == "learning_rate_multiplier" and not (0 < number <= 10):
                raise FineTuneError(f"learning_rate_multiplier: {number} is outside (0, 10]")
            if name == "validation_fraction" and not (0 <= number <= 0.5):
                raise FineTuneError(f"validation_fraction: {number} is outside [0, 0.5]")
            if name in cls.LIMITS:
                low, high = cls.LIMITS[name]
                if not (low <= number <= high):
                    raise FineTuneError(f"{name}: {number} is outside {low}..{high}")
            out[name] = number
        return cls(**out)

    def to_dict(self) -> dict:
        return asdict(self)

    def job_fields(self) -> dict:
        """The create request's hyperparameters, suffix and seed (what is unset is left out)."""
        fields: dict = {}
        hp = {
            "n_epochs": self.epochs,
            "batch_size": self.batch_size,
            "learning_rate_multiplier": self.learning_rate_multiplier,
        }
        hp = {k: v for k, v in hp.items() if v is not None}
        if hp:
            fields["hyperparameters"] = hp
        if self.suffix:
            fields["suffix"] = self.suffix
        if self.seed is not None:
            fields["seed"] = self.seed
        return fields


def hosted_split(rows: list, fraction: float) -> tuple[list, list]:
    """(training, validation) rows: the validation file is the train split's last cases, as many as
    `fraction` of it (rounded), and only while MIN_HOSTED_EXAMPLES are left to train on (else no
    validation file: the provider refuses a smaller training file)."""
    n_valid = round(len(rows) * fraction) if fraction > 0 else 0
    if n_valid and len(rows) - n_valid < MIN_HOSTED_EXAMPLES:
        n_valid = max(0, len(rows) - MIN_HOSTED_EXAMPLES)
    if not n_valid:
        return list(rows), []
    return list(rows[:-n_valid]), list(rows[-n_valid:])


def chat_jsonl(rows) -> bytes:
    """Chat fine-tuning JSONL: one {"messages": [...the plain prompt..., the answer]} per row."""
    lines = []
    for row in rows:
        record = {"messages": [*row.messages, {"role": "assistant", "content": row.answer}]}
        lines.append(json.dumps(record, ensure_ascii=False))
    return ("\n".join(lines) + "\n").encode() if lines else b""


def finetune_files(job: FineTuneJob) -> tuple[bytes, bytes]:
    """The training and validation files a hosted job uploads (validation b"" when there is none)."""
    hp = HostedHyperparameters.from_dict(job.hyperparameters)
    rows = _train_rows(job.suite_version, _source_spec(job))
    _leak_check(job.suite_version, rows)  # again: reviews may have changed what the source gives
    train, valid = hosted_split(rows, hp.validation_fraction)
    return chat_jsonl(train), chat_jsonl(valid)


def finetune_training_file(job: FineTuneJob) -> bytes:
    """Chat JSONL of the examples the job's source gives now (FineTuneError when it cannot be read)."""
    return chat_jsonl(_train_rows(job.suite_version, _source_spec(job)))


def _source_spec(job: FineTuneJob) -> str:
    return (job.source or {}).get("spec") or "train"


def adapter_dir(job: FineTuneJob) -> Path:
    return Path(settings.MEDIA_ROOT) / job.adapter


@transaction.atomic
def finetune_create(
    *,
    suite_version: SuiteVersion,
    base_endpoint: Endpoint,
    hyperparameters: dict | None = None,
    user=None,
    backend: str = FineTuneBackend.LOCAL,
    source: str | None = None,
) -> FineTuneJob:
    """Validate and queue a fine-tuning job (nothing is written when anything is wrong).

    `source`: what it trains on (selectors/training_data.py): "train" (the default), a labelling
    run's answers "run:RUN:ARM[:all]" (distillation from a teacher), "reviewed:RUN", or several
    joined by ",". The student is evaluated on `suite_version`'s test split.

    backend "local": LoRA of a local base endpoint (hyperparameters: training.Hyperparameters, with
    `qlora: true` only where bitsandbytes and CUDA are); backend "openai": the base endpoint's
    OpenAI-compatible fine-tuning API (hyperparameters: HostedHyperparameters)."""
    if backend not in BACKENDS:
        raise FineTuneError(f"backend {backend!r}: use one of {', '.join(BACKENDS)}")
    if backend == FineTuneBackend.OPENAI:
        return _create_hosted(suite_version, base_endpoint, hyperparameters, user, source)
    if base_endpoint.provider != Provider.LOCAL or base_endpoint.kind != EndpointKind.BASE:
        raise FineTuneError(
            f"endpoint {base_endpoint.name!r} is not a local base model: the local backend fine-tunes "
            "local models; for an OpenAI-compatible base model use the openai backend (its fine-tuning "
            "API), or export the train split as fine-tuning JSONL and register the result yourself"
        )
    try:
        hp = Hyperparameters.from_dict(hyperparameters)
    except TrainingError as exc:
        raise FineTuneError(str(exc)) from None
    if hp.qlora and (reason := qlora_unavailable()):
        raise FineTuneError(reason)
    data = _training_set(suite_version, source)
    n = len(data.rows)
    _too_few(suite_version, data, MIN_EXAMPLES, "fine-tuning")
    _leak_check(suite_version, data.rows)
    job = FineTuneJob.objects.create(
        suite_version=suite_version,
        base_endpoint=base_endpoint,
        backend=FineTuneBackend.LOCAL,
        hyperparameters=hp.to_dict(),
        examples=n,
        created_by=user,
        **_source_fields(data),
    )
    job.adapter = f"adapters/finetune-{job.pk}"
    job.save(update_fields=["adapter"])
    _audit_create(job, user, n)
    queue.enqueue("finetune", job.pk)
    return job


def _training_set(version: SuiteVersion, source: str | None) -> TrainingSet:
    try:
        return training_set(version, source)
    except TrainingSourceError as exc:
        raise FineTuneError(str(exc)) from None


def _too_few(version: SuiteVersion, data: TrainingSet, minimum: int, what: str) -> None:
    n = len(data.rows)
    if n >= minimum:
        return
    if data.spec == "train":
        unlabelled = version.cases.filter(split=Split.TRAIN).count() - n
        hint = (
            f"; its {unlabelled} other train case(s) have none: have a teacher label them (a labelling "
            "run, `evaluate --split train`), then train on its answers: run:RUN:ARM:all (every answer), "
            "run:RUN:ARM (those that passed the cases' assertions) or reviewed:RUN (those a reviewer "
            "accepted)"
            if unlabelled > 0
            else " (upload cases with split=train)"
        )
        raise FineTuneError(
            f"{version} has {n} train case(s) with an expected output; {what} needs at least {minimum}{hint}"
        )
    raise FineTuneError(
        f"the source {data.spec!r} gives {n} example(s) ("
        + ", ".join(f"{p['spec']}: {p['examples']}" for p in data.parts)
        + f"); {what} needs at least {minimum}: review more answers, use :all for every answer of a "
        "labelling run, or add the train split (e.g. train," + data.spec + ")"
    )


def _source_fields(data: TrainingSet) -> dict:
    teacher_endpoint, teacher_strategy = data.teacher or (None, None)
    return {
        "source": data.describe(),
        "data_cost": data.data_cost,
        "teacher_endpoint": teacher_endpoint,
        "teacher_strategy": teacher_strategy,
    }


def _audit_create(job: FineTuneJob, user, n: int) -> None:
    after = {
        "suite_version": job.suite_version.number,
        "base_endpoint": job.base_endpoint.name,
        "examples": n,
        "hyperparameters": job.hyperparameters,
    }
    if _source_spec(job) != "train":
        after["source"] = _source_spec(job)
    if job.backend != FineTuneBackend.LOCAL:
        after["backend"] = job.backend
    audit_record(
        actor=user, action="finetune.create", obj=job, suite_id=job.suite_version.suite_id, after=after
    )


def _create_hosted(version: SuiteVersion, base: Endpoint, hyperparameters, user, source) -> FineTuneJob:
    if base.provider != Provider.OPENAI or base.kind != EndpointKind.BASE:
        raise FineTuneError(
            f"endpoint {base.name!r} is not an OpenAI-compatible base model: the openai backend "
            "fine-tunes through the base endpoint's fine-tuning API (its base URL and key variable)"
        )
    hp = HostedHyperparameters.from_dict(hyperparameters)
    try:
        base_url_check(base.base_url)
    except ValidationError as exc:
        raise FineTuneError(f"endpoint {base.name!r}: {' '.join(exc.messages)}") from None
    data = _training_set(version, source)
    rows = data.rows
    train, valid = hosted_split(rows, hp.validation_fraction)
    _too_few(version, data, MIN_HOSTED_EXAMPLES, "the fine-tuning API")
    _leak_check(version, rows)  # the validation file is a slice of the training rows: checked too
    job = FineTuneJob.objects.create(
        suite_version=version,
        base_endpoint=base,
        backend=FineTuneBackend.OPENAI,
        hyperparameters=hp.to_dict(),
        examples=len(train),
        validation_examples=len(valid),
        created_by=user,
        next_poll_at=timezone.now(),
        **_source_fields(data),
    )
    _audit_create(job, user, len(rows))
    queue.enqueue("finetune_poll", job.pk, 0)
    return job


@transaction.atomic
def finetune_cancel(*, job_id: int, user=None) -> bool:
    """Stop a queued or training job; the worker notices at its next step and deletes the adapter.
    False when it had already finished (nothing changed, nothing recorded)."""
    live = FineTuneJob.objects.filter(pk=job_id, status__in=[FineTuneStatus.QUEUED, FineTuneStatus.RUNNING])
    job = live.select_for_update(of=("self",)).select_related("suite_version", "base_endpoint").first()
    now = timezone.now()
    if job is None or not live.update(status=FineTuneStatus.CANCELLED, finished_at=now):
        return False
    if job.backend == FineTuneBackend.OPENAI:
        # The poller cancels the remote job (or, before it was created, never creates it): now.
        FineTuneJob.objects.filter(pk=job.pk).update(next_poll_at=now)
        queue.enqueue("finetune_poll", job.pk, job.poll_attempts)
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
    claimed = FineTuneJob.objects.filter(
        pk=job_id, status=FineTuneStatus.QUEUED, backend=FineTuneBackend.LOCAL
    ).update(status=FineTuneStatus.RUNNING, started_at=now, heartbeat_at=now)
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
        rows = _train_rows(job.suite_version, _source_spec(job))
        _leak_check(job.suite_version, rows)  # again: reviews may have changed what the source gives
        if len(rows) < MIN_EXAMPLES:
            raise FineTuneError(f"the source {_source_spec(job)!r} gives {len(rows)} example(s) now")
        if len(rows) != job.examples:
            FineTuneJob.objects.filter(pk=job_id).update(examples=len(rows))
        # What the adapter learns from, kept beside it: the training file of a hosted job.
        out.mkdir(parents=True, exist_ok=True)
        (out / TRAINING_FILE).write_bytes(chat_jsonl(rows))
        with heartbeat(alive, name=f"finetune-{job_id}"):  # loading the model takes a while too
            result = train_lora(
                base_model=job.base_endpoint.model,
                examples=[(row.messages, row.answer) for row in rows],
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
        arms=_evaluation_arms(base, endpoint, job.suite_version, job),
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
        arms=_evaluation_arms(job.base_endpoint, job.endpoint, job.suite_version, job),
        user=user,
    )
    FineTuneJob.objects.filter(pk=job.pk).update(run=run)
    job.run = run
    return run


# -- the hosted backend: submit once, then follow ----------------------------------------------------

_FOLLOWED = (FineTuneStatus.QUEUED, FineTuneStatus.RUNNING, FineTuneStatus.CANCELLED)


def _client(base: Endpoint) -> FineTuneClient:
    """The base endpoint's fine-tuning API: its base URL, its key variable (read now, never kept)."""
    try:
        base_url_check(base.base_url)
    except ValidationError as exc:
        raise ProviderError(f"endpoint {base.name!r}: {' '.join(exc.messages)}") from None
    return FineTuneClient(
        base_url=base.base_url or None,
        api_key=endpoint_api_key(base),
        timeout=float(base.timeout_seconds),
        max_retries=settings.FTVP_HTTP_RETRIES,
    )


def finetune_poll(*, job_id: int, attempt: int = 0) -> None:
    """One look at a hosted job: submit it when it has no remote job yet (files uploaded and the job
    created once: each id is stored as soon as it is known, and a create whose answer was lost is
    looked up by its training file rather than sent again), cancel it remotely when it was cancelled
    here, else record its status, events and checkpoint metrics; at a final state register the
    fine-tuned endpoint (succeeded) or record why not. Then the next look is sent with a countdown.

    `attempt` is the poll's token: a poll claims it with a conditional UPDATE, so a message delivered
    twice, or re-sent by the recovery sweep while the original waits, is dropped."""
    now = timezone.now()
    lease = now + timedelta(seconds=settings.FTVP_STALL_SECONDS)
    # One poll at a time: a poll still working (its lease live, renewed before each remote call)
    # keeps any other out, whatever token the other carries (a sweep's re-send, a redelivery).
    claimed = (
        FineTuneJob.objects.filter(
            pk=job_id, backend=FineTuneBackend.OPENAI, poll_attempts=attempt, next_poll_at__isnull=False
        )
        .filter(Q(poll_lease_until__isnull=True) | Q(poll_lease_until__lt=now))
        .update(poll_attempts=attempt + 1, next_poll_at=lease, poll_lease_until=lease)
    )
    if not claimed:
        return
    job = FineTuneJob.objects.select_related("base_endpoint", "suite_version").get(pk=job_id)
    changed = False
    try:
        client = _client(job.base_endpoint)
        if job.status == FineTuneStatus.CANCELLED:
            if _cancel_remote(job, client):
                return
        else:
            if not job.remote_job_id:
                _submit(job, client)
                changed = True
                job.refresh_from_db()
                if job.status == FineTuneStatus.CANCELLED and _cancel_remote(job, client):
                    return  # cancelled while it was being submitted
            remote = client.get_job(job.remote_job_id)
            changed = _record(job, remote, client) or changed
            if remote.get("status") in FINAL_STATUSES:
                _settle(job.pk, remote)
                return
    except FineTuneApiError as exc:
        if not exc.transient:
            _fail_hosted(job.pk, exc)
            return
        log.warning("fine-tune #%s: %s; looking again later", job_id, redact_stored(str(exc)))
    except (ProviderError, FineTuneError) as exc:  # no key in the worker, a URL not allowed
        _fail_hosted(job.pk, exc)
        return
    _next_poll(job.pk, attempt + 1, changed)


def _next_poll(job_id: int, attempt: int, changed: bool) -> None:
    job = FineTuneJob.objects.filter(pk=job_id).values("next_poll_at", "poll_interval").first()
    if job is None or job["next_poll_at"] is None:
        return
    first = float(settings.FTVP_FINETUNE_POLL_SECONDS)
    interval = first if changed else min(POLL_MAX_SECONDS, max(first, job["poll_interval"] * 2))
    FineTuneJob.objects.filter(pk=job_id, poll_attempts=attempt).update(
        poll_interval=interval,
        next_poll_at=timezone.now() + timedelta(seconds=interval),
        poll_lease_until=None,
    )
    queue.enqueue("finetune_poll", job_id, attempt, countdown=interval)


def _submit(job: FineTuneJob, client: FineTuneClient) -> None:
    """Upload the files (each id stored at once) and create the job (its id stored at once)."""
    train_file, valid_file = finetune_files(job)  # the leakage guard again: reviews may have changed
    if not job.remote_training_file:
        _renew_lease(job)
        uploaded = client.upload_file(f"ftvp-finetune-{job.pk}-train.jsonl", train_file)
        job.remote_training_file = uploaded["id"]
        FineTuneJob.objects.filter(pk=job.pk).update(remote_training_file=job.remote_training_file)
    if valid_file and not job.remote_validation_file:
        _renew_lease(job)
        uploaded = client.upload_file(f"ftvp-finetune-{job.pk}-validation.jsonl", valid_file)
        job.remote_validation_file = uploaded["id"]
        FineTuneJob.objects.filter(pk=job.pk).update(remote_validation_file=job.remote_validation_file)
    if job.submitted_at is not None:
        # An earlier attempt sent the create and its answer was lost: the job may exist. Its training
        # file (uploaded for this job only) finds it.
        for remote in client.list_jobs():
            if remote.get("training_file") == job.remote_training_file and isinstance(remote.get("id"), str):
                _store_remote_id(job, remote["id"])
                return
    _renew_lease(job)
    job.submitted_at = timezone.now()
    FineTuneJob.objects.filter(pk=job.pk).update(submitted_at=job.submitted_at)
    payload = {
        "model": job.base_endpoint.model,
        "training_file": job.remote_training_file,
        **HostedHyperparameters.from_dict(job.hyperparameters).job_fields(),
    }
    if job.remote_validation_file:
        payload["validation_file"] = job.remote_validation_file
    created = client.create_job(payload, retry=False)  # never re-sent blindly: looked up next time
    _store_remote_id(job, created["id"])


def _renew_lease(job: FineTuneJob) -> None:
    """Before a slow remote call: this poll keeps the job for another FTVP_STALL_SECONDS."""
    lease = timezone.now() + timedelta(seconds=settings.FTVP_STALL_SECONDS)
    FineTuneJob.objects.filter(pk=job.pk).update(poll_lease_until=lease, next_poll_at=lease)


def _store_remote_id(job: FineTuneJob, remote_id: str) -> None:
    job.remote_job_id = remote_id
    FineTuneJob.objects.filter(pk=job.pk).update(remote_job_id=remote_id)
    log.info("fine-tune #%s submitted as %s", job.pk, remote_id)


def _cancel_remote(job: FineTuneJob, client: FineTuneClient) -> bool:
    """Cancel a job cancelled here at its provider. True when nothing more needs following."""
    if not job.remote_job_id or job.remote_status in FINAL_STATUSES:
        FineTuneJob.objects.filter(pk=job.pk).update(next_poll_at=None)
        return True
    try:
        remote = client.cancel_job(job.remote_job_id)
    except FineTuneApiError as exc:
        if exc.transient:
            raise
        remote = client.get_job(job.remote_job_id)  # e.g. it had finished meanwhile
        if remote.get("status") not in FINAL_STATUSES:
            FineTuneJob.objects.filter(pk=job.pk).update(
                next_poll_at=None,
                remote_status=str(remote.get("status") or "")[:30],
                error=redact_stored(f"the provider refused to cancel it: {exc}")[:2000],
            )
            return True
    _record(job, remote, client, events=False)
    if remote.get("status") in FINAL_STATUSES:
        FineTuneJob.objects.filter(pk=job.pk).update(next_poll_at=None)
        return True
    return False


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if value == value and abs(value) != float("inf") else None


_METRICS = {
    "train_loss": "train_loss",
    "valid_loss": "valid_loss",
    "full_valid_loss": "full_valid_loss",
    "train_mean_token_accuracy": "train_accuracy",
    "valid_mean_token_accuracy": "valid_accuracy",
    "full_valid_mean_token_accuracy": "full_valid_accuracy",
}


def _metrics(data: dict) -> dict:
    return {ours: v for theirs, ours in _METRICS.items() if (v := _number(data.get(theirs))) is not None}


def _record(job: FineTuneJob, remote: dict, client: FineTuneClient, *, events: bool = True) -> bool:
    """Store what the provider says of the job; True when anything new arrived (status, events)."""
    mask = redactor()
    status = str(remote.get("status") or "")[:30]
    changed = status != job.remote_status
    fields: dict = {"remote_status": status}
    if (tokens := _number(remote.get("trained_tokens"))) is not None and tokens >= 0:
        fields["trained_tokens"] = int(tokens)
    if events:
        known = {e.get("id") for e in job.events}
        merged = list(job.events)
        for event in _best_effort(job, "events", lambda: _new_events(client, job.remote_job_id, known)):
            data = event.get("data") if isinstance(event.get("data"), dict) else None
            merged.append(
                {
                    "id": event["id"],
                    "created_at": int(_number(event.get("created_at")) or 0),
                    "level": str(event.get("level") or "info")[:10],
                    "type": str(event.get("type") or "message")[:10],
                    "message": mask(str(event.get("message") or ""))[:1000],
                    **({"data": json.loads(mask(json.dumps(data)))} if data else {}),
                }
            )
        if len(merged) != len(job.events):
            changed = True
            merged.sort(key=lambda e: (e["created_at"], e["id"]))
            fields["events"] = job.events = merged[-MAX_EVENTS:]
        # Metrics: the steps' events (type metrics), then the checkpoints the API keeps.
        points: dict[int, dict] = {int(p["step"]): dict(p) for p in job.checkpoints if "step" in p}
        total_steps = job.total_steps
        for event in job.events:
            data = event.get("data") or {}
            step = _number(data.get("step"))
            if event.get("type") != "metrics" or step is None:
                continue
            points.setdefault(int(step), {"step": int(step)}).update(_metrics(data))
            if (total := _number(data.get("total_steps"))) is not None:
                total_steps = max(total_steps, int(total))
        for checkpoint in _best_effort(
            job, "checkpoints", lambda: client.list_checkpoints(job.remote_job_id)
        ):
            step = _number(checkpoint.get("step_number"))
            if step is None:
                continue
            point = points.setdefault(int(step), {"step": int(step)})
            point.update(_metrics(checkpoint.get("metrics") or {}))
            point["checkpoint"] = mask(str(checkpoint.get("fine_tuned_model_checkpoint") or ""))[:300]
        ordered = sorted(points.values(), key=lambda p: p["step"])[-MAX_CHECKPOINTS:]
        if ordered != job.checkpoints:
            fields["checkpoints"] = job.checkpoints = ordered
            changed = True
        if ordered:
            step = ordered[-1]["step"]
            fields["step"] = step
            fields["total_steps"] = max(total_steps, step)
            fields["losses"] = [round(p["train_loss"], 5) for p in ordered if "train_loss" in p]
    FineTuneJob.objects.filter(pk=job.pk).update(**fields)
    # The local status follows the remote one while the job is live here.
    if status == "running":
        FineTuneJob.objects.filter(pk=job.pk, status=FineTuneStatus.QUEUED).update(
            status=FineTuneStatus.RUNNING, started_at=timezone.now()
        )
    job.remote_status = status
    return changed


MAX_EVENT_PAGES = 10


def _best_effort(job: FineTuneJob, what: str, read) -> list[dict]:
    """Events and checkpoints are for the chart: a server without them, or an error reading them, is
    logged and the job followed on by its status alone (only the job itself can fail it)."""
    try:
        got = read()
    except FineTuneApiError as exc:
        log.warning("fine-tune #%s: %s not read (%s)", job.pk, what, redact_stored(str(exc)))
        return []
    return [item for item in got if isinstance(item, dict)]


def _new_events(client: FineTuneClient, remote_id: str, known: set) -> list[dict]:
    """The events not seen yet: pages of the newest, back to the first one already stored."""
    found: list[dict] = []
    after = None
    for _ in range(MAX_EVENT_PAGES):
        page, more = client.events_page(remote_id, limit=100, after=after)
        fresh = [e for e in page if isinstance(e.get("id"), str) and e["id"] not in known]
        found.extend(fresh)
        if not more or not page or len(fresh) < len(page):
            break
        after = page[-1].get("id") if isinstance(page[-1].get("id"), str) else None
        if after is None:
            break
    return found


def _provider_cost(remote: dict) -> float | None:
    """The provider's own figure for the training, when it reports one (USD)."""
    for name in ("cost", "total_cost", "training_cost", "estimated_cost"):
        value = _number(remote.get(name))
        if value is not None and value >= 0:
            return value
    usage = remote.get("usage")
    if isinstance(usage, dict):
        value = _number(usage.get("cost"))
        if value is not None and value >= 0:
            return value
    return None


def _settle(job_id: int, remote: dict) -> None:
    status = remote.get("status")
    if status == "succeeded":
        try:
            job, endpoint, run = _register_hosted(job_id, remote)
        except Exception as exc:
            log.exception("fine-tune #%s succeeded remotely but could not be registered", job_id)
            _fail_hosted(job_id, exc)
            return
        if job is not None:
            log.info(
                "fine-tune #%s: %s registered as %s, run #%s", job_id, job.fine_tuned_model, endpoint, run.pk
            )
        return
    now = timezone.now()
    if status == "failed":
        error = remote.get("error") if isinstance(remote.get("error"), dict) else {}
        message = error.get("message") or "the provider reports the job failed, without a reason"
        code = f" ({error['code']})" if error.get("code") else ""
        FineTuneJob.objects.filter(
            pk=job_id, status__in=[FineTuneStatus.QUEUED, FineTuneStatus.RUNNING]
        ).update(
            status=FineTuneStatus.FAILED, error=redact_stored(f"{message}{code}")[:2000], finished_at=now
        )
    else:  # cancelled at the provider (here, or by someone else there)
        FineTuneJob.objects.filter(
            pk=job_id, status__in=[FineTuneStatus.QUEUED, FineTuneStatus.RUNNING]
        ).update(status=FineTuneStatus.CANCELLED, error="cancelled at the provider", finished_at=now)
    FineTuneJob.objects.filter(pk=job_id).update(next_poll_at=None)


def _fail_hosted(job_id: int, exc: Exception) -> None:
    FineTuneJob.objects.filter(pk=job_id, status__in=[FineTuneStatus.QUEUED, FineTuneStatus.RUNNING]).update(
        status=FineTuneStatus.FAILED,
        error=redact_stored(str(exc) or type(exc).__name__)[:2000],
        finished_at=timezone.now(),
    )
    FineTuneJob.objects.filter(pk=job_id).update(next_poll_at=None)


@transaction.atomic
def _register_hosted(job_id: int, remote: dict):
    """The fine-tuned model as an endpoint on the base's URL and key variable, its training cost,
    and its evaluation next to the base model's ladder: once, unless cancelled meanwhile."""
    job = FineTuneJob.objects.select_for_update().select_related("base_endpoint").get(pk=job_id)
    if job.status not in (FineTuneStatus.QUEUED, FineTuneStatus.RUNNING):
        FineTuneJob.objects.filter(pk=job_id).update(next_poll_at=None)
        return None, None, None
    model = remote.get("fine_tuned_model")
    if not isinstance(model, str) or not model.strip():
        raise FineTuneError("the provider reports success but names no fine_tuned_model")
    base = job.base_endpoint
    tokens = _number(remote.get("trained_tokens"))
    cost = _provider_cost(remote)
    if cost is None and tokens is not None and float(base.price_train) > 0:
        cost = tokens * float(base.price_train) / 1_000_000
    # else unknown (None), never $0: the decision estimates it from the suite's training price, or
    # says which price to set
    endpoint = endpoint_create(
        name=_endpoint_name(base, job),
        provider=Provider.OPENAI,
        model=model.strip(),
        base_url=base.base_url,
        api_key_env=base.api_key_env,
        kind=EndpointKind.FINE_TUNED,
        base_endpoint=base,
        price_in=base.price_in,
        price_out=base.price_out,
        training_cost=None if cost is None else f"{cost:.4f}",
        max_concurrency=base.max_concurrency,
        timeout_seconds=base.timeout_seconds,
        params=dict(base.params or {}),
    )
    run = run_create(
        suite_version=job.suite_version,
        arms=_evaluation_arms(base, endpoint, job.suite_version, job),
        user=job.created_by,
    )
    now = timezone.now()
    job.status = FineTuneStatus.SUCCEEDED
    job.finished_at = now
    job.started_at = job.started_at or now
    job.fine_tuned_model = model.strip()
    job.trained_tokens = None if tokens is None else int(tokens)
    job.training_cost = cost
    job.endpoint = endpoint
    job.run = run
    job.next_poll_at = None
    job.total_steps = max(job.total_steps, job.step)
    job.save()
    return job, endpoint, run


def finetunes_recover(*, startup: bool = False) -> dict[str, int]:
    """Jobs whose worker is gone: a local training job whose heartbeat went stale fails (training
    restarts from scratch; start a new job), a local job queued for too long (or any, when a worker
    starts) gets its message again (the claim makes a duplicate harmless), and a hosted job is
    followed again (`finetune_poll`: nothing is submitted twice)."""
    stale_before = timezone.now() - timedelta(seconds=settings.FTVP_STALL_SECONDS)
    counts = {"failed": 0, "requeued": 0, "polled": 0}
    local = FineTuneJob.objects.filter(backend=FineTuneBackend.LOCAL)
    for job_id, adapter in local.filter(
        status=FineTuneStatus.RUNNING, heartbeat_at__lt=stale_before
    ).values_list("id", "adapter"):
        failed = local.filter(pk=job_id, status=FineTuneStatus.RUNNING, heartbeat_at__lt=stale_before).update(
            status=FineTuneStatus.FAILED,
            error="the worker training it stopped (no progress for "
            f"{settings.FTVP_STALL_SECONDS} s); start a new job",
            finished_at=timezone.now(),
        )
        if failed:
            shutil.rmtree(Path(settings.MEDIA_ROOT) / adapter, ignore_errors=True)
            counts["failed"] += 1
    queued = local.filter(status=FineTuneStatus.QUEUED)
    if not startup:
        # Behind a training job (the trainer takes one at a time) a queued job is only waiting.
        if local.filter(status=FineTuneStatus.RUNNING).exists():
            queued = queued.none()
        queued = queued.filter(created_at__lt=stale_before)
    for job_id in queued.values_list("id", flat=True):
        queue.enqueue("finetune", job_id)
        counts["requeued"] += 1
    # Hosted jobs: the remote job id is stored, so following it again is all a restart needs. Every
    # followed job at a worker's start, else those whose next look is overdue (a lost message, a
    # worker killed mid-poll); the poll token makes a second message for the same look harmless.
    hosted = FineTuneJob.objects.filter(
        backend=FineTuneBackend.OPENAI, status__in=_FOLLOWED, next_poll_at__isnull=False
    )
    if not startup:
        hosted = hosted.filter(next_poll_at__lt=stale_before)
    for job_id, attempt in hosted.values_list("id", "poll_attempts"):
        queue.enqueue("finetune_poll", job_id, attempt)
        counts["polled"] += 1
    return counts


def _evaluation_arms(
    base: Endpoint, tuned: Endpoint, version: SuiteVersion, job: FineTuneJob | None = None
) -> list[tuple[Endpoint, Strategy]]:
    """The base model's ladder, the optimised few-shot and retrieval where the suite has them, the
    teacher of a distilled job (the prompting it would replace), then the fine-tuned endpoint."""
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
    if job is not None and job.teacher_endpoint_id and job.teacher_strategy_id:
        teacher = (job.teacher_endpoint, job.teacher_strategy)
        if all((e.pk, s.pk) != (teacher[0].pk, teacher[1].pk) for e, s in arms):
            arms.append(teacher)
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
