"""Run writes: create, start, generate a batch, score a batch, finalize, cancel, resume, recover.

Every step is idempotent and safe to run twice (a redelivered message after a killed worker):
results are upserted on (arm, case, sample), and the steps that count (a batch generated, a batch
scored, a run finalized) are conditional UPDATEs that succeed once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Sequence
from datetime import timedelta

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Max, Q
from django.utils import timezone

from evaluations import strategies
from evaluations.analysis.costs import token_cost
from evaluations.models import (
    Arm,
    Batch,
    Case,
    CompletionCache,
    Endpoint,
    Provider,
    Result,
    Run,
    RunStatus,
    Split,
    Strategy,
    SuiteVersion,
    Trigger,
)
from evaluations.providers.base import Completion, GenerationParams, ProviderError
from evaluations.services.audit import audit_record
from evaluations.services.endpoints import endpoint_provider
from evaluations.services.leases import heartbeat
from evaluations.services.queue import enqueue
from evaluations.services.scorings import (
    current_scoring,
    runs_unanalysed_before,
    save_scores,
    scoring_apply,
    scoring_create,
    scoring_finish,
    scorings_unfinished_before,
)
from evaluations.services.secrets import redact_stored, redactor

log = logging.getLogger(__name__)

MAX_REPEATS = 20
MAX_REMOTE_BATCH = 256
# A batch whose task crashed this many times fails its run instead of being retried forever.
MAX_ATTEMPTS = 5


class RunError(ValueError):
    """A run cannot be created as asked; the message says why and what to do."""


def run_create(
    *,
    suite_version: SuiteVersion,
    arms: Sequence[tuple[Endpoint, Strategy]],
    repeats: int = 1,
    trigger: str = Trigger.MANUAL,
    user=None,
    use_cache: bool = True,
    schedule=None,
) -> Run:
    """Create a run, its arms and their batches in one transaction; start it once committed.

    A run a `schedule` fires is the system's act: its "run.create" event has no actor and names the
    schedule (`user`, the schedule's creator, is still the run's `created_by`)."""
    if not arms:
        raise RunError("a run needs at least one arm (endpoint x strategy)")
    if not 1 <= repeats <= MAX_REPEATS:
        raise RunError(f"repeats must be between 1 and {MAX_REPEATS}")
    seen = set()
    for endpoint, strategy in arms:
        if (endpoint.pk, strategy.pk) in seen:
            raise RunError(f"arm {endpoint.name}:{strategy} is listed twice")
        seen.add((endpoint.pk, strategy.pk))
    case_ids = list(
        suite_version.cases.filter(split=Split.TEST).order_by("position").values_list("id", flat=True)
    )
    if not case_ids:
        raise RunError(f"{suite_version} has no test cases")
    chunks = {
        endpoint.pk: [case_ids[i : i + size] for i in range(0, len(case_ids), size)]
        for endpoint, size in ((e, batch_size(e)) for e, _ in arms)
    }
    with transaction.atomic():
        run = Run.objects.create(
            suite_version=suite_version,
            trigger=trigger,
            repeats=repeats,
            use_cache=use_cache,
            created_by=user,
            schedule=schedule,
            expected_results=len(case_ids) * len(arms) * repeats,
            batches_total=sum(len(chunks[e.pk]) for e, _ in arms),
        )
        arm_rows = Arm.objects.bulk_create(
            [Arm(run=run, endpoint=e, strategy=s, position=i) for i, (e, s) in enumerate(arms)]
        )
        Batch.objects.bulk_create(
            [
                Batch(run=run, arm=arm, index=index, case_ids=chunk)
                for arm in arm_rows
                for index, chunk in enumerate(chunks[arm.endpoint_id])
            ]
        )
        scoring_create(run=run, user=user)
        audit_record(
            actor=None if schedule is not None else user,
            action="run.create",
            obj=run,
            suite_id=suite_version.suite_id,
            after={
                "suite_version": suite_version.number,
                "trigger": trigger,
                "arms": [f"{e.name} · {s}" for e, s in arms],
                "repeats": repeats,
                "use_cache": use_cache,
                **({"schedule": schedule.pk, "schedule_name": schedule.name} if schedule is not None else {}),
            },
        )
        enqueue("start_run", run.pk)
    return run


def batch_size(endpoint: Endpoint) -> int:
    """Cases per batch for an arm on `endpoint`: FTVP_BATCH_SIZE, and for a remote endpoint at least
    twice its concurrency (at most MAX_REMOTE_BATCH), so that one batch alone keeps the endpoint busy
    and the fixed cost of a batch (its messages, lease, reads and marks) is spread over many calls."""
    size = settings.FTVP_BATCH_SIZE
    if endpoint.provider == Provider.LOCAL:
        return size
    return max(size, min(MAX_REMOTE_BATCH, 2 * endpoint.max_concurrency))


def run_start(*, run_id: int) -> bool:
    """Claim a queued run (queued -> running) and enqueue its batches, arms interleaved."""
    with transaction.atomic():
        claimed = Run.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
            status=RunStatus.RUNNING, started_at=timezone.now()
        )
        if not claimed:
            return False
        for batch_id in (
            Batch.objects.filter(run_id=run_id)
            .order_by("index", "arm__position")
            .values_list("id", flat=True)
        ):
            enqueue("run_batch", batch_id)
    return True


def run_cancel(*, run_id: int, user=None) -> bool:
    """Cancel a queued or running run; batches in flight stop at their next chunk."""
    with transaction.atomic():
        cancelled = Run.objects.filter(pk=run_id, status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).update(
            status=RunStatus.CANCELLED, finished_at=timezone.now()
        )
        if cancelled:
            run = Run.objects.select_related("suite_version").get(pk=run_id)
            audit_record(
                actor=user,
                action="run.cancel",
                obj=run,
                suite_id=run.suite_version.suite_id,
                after={"status": RunStatus.CANCELLED},
            )
    return bool(cancelled)


def run_resume(*, run_id: int, actor=None) -> dict[str, int]:
    """Send again what an unfinished run still needs (a stalled run: its worker gone for good, its
    messages lost): the start of a queued run; the next step (generate or score) of each batch not
    scored that no live worker holds, releasing a stale lease; finalize when every batch is scored.

    Safe to repeat: each step checks its lease and its done-mark first, so a second resume (or the
    recovery sweep of a worker starting meanwhile) adds duplicates that do nothing. A worker must be
    running to take the work. Returns what was sent, by step; RunError for a finished run."""
    counts = {"start": 0, "generate": 0, "score": 0, "finalize": 0}
    with transaction.atomic():
        run = Run.objects.select_for_update().select_related("suite_version").filter(pk=run_id).first()
        if run is None:
            raise RunError(f"run #{run_id} does not exist")
        if run.status not in (RunStatus.QUEUED, RunStatus.RUNNING):
            raise RunError(
                f"run #{run.pk} is {run.status}: only a queued or running run can be resumed; "
                "start a new run to evaluate again"
            )
        if run.status == RunStatus.QUEUED:
            enqueue("start_run", run.pk)
            counts["start"] = 1
        else:
            unfinished = Batch.objects.filter(run_id=run.pk, scored_at__isnull=True).order_by("index")
            _resend_unheld(unfinished.filter(heartbeat_at__isnull=True), counts)
            _resend_stale(unfinished.filter(heartbeat_at__lt=_stale_before()), counts)
            if not unfinished.exists():
                enqueue("finalize_run", run.pk)
                counts["finalize"] = 1
        audit_record(
            actor=actor,
            action="run.resume",
            obj=run,
            suite_id=run.suite_version.suite_id,
            after={"status": run.status, "sent": {k: v for k, v in counts.items() if v}},
        )
    return counts


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


def run_delete(*, run: Run, user=None) -> None:
    """Delete a finished run with its results, unless `run_delete_refusal` says why not."""
    with transaction.atomic():
        run = Run.objects.select_for_update().select_related("suite_version__suite").get(pk=run.pk)
        suite = run.suite_version.suite
        refusal = run_delete_refusal(run)
        if refusal:
            raise RunError(refusal)
        arms = [
            str(arm.label) for arm in run.arms.select_related("endpoint", "strategy").order_by("position")
        ]
        audit_record(
            actor=user,
            action="run.delete",
            obj=run,
            suite_id=suite.pk,
            before={
                "suite_version": run.suite_version.number,
                "status": run.status,
                "trigger": run.trigger,
                "arms": arms,
                "created_by": run.created_by_id,
                "created_at": run.created_at,
            },
        )
        run.delete()


# --- leases ---------------------------------------------------------------------------------------


def _stale_before():
    return timezone.now() - timedelta(seconds=settings.FTVP_STALL_SECONDS)


def _claim(batch_id: int, phase: str) -> bool:
    """Take the batch's lease for `phase` unless a live worker holds it or the phase is done.

    Past MAX_ATTEMPTS claims the run fails (a task that keeps crashing is a bug or a broken
    environment, and its log says which), so no run is retried forever.
    """
    done_field = "generated_at" if phase == "generate" else "scored_at"
    qs = Batch.objects.filter(pk=batch_id, **{f"{done_field}__isnull": True}).filter(
        Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=_stale_before())
    )
    if phase == "score":
        qs = qs.filter(generated_at__isnull=False)
    if not qs.update(heartbeat_at=timezone.now(), attempts=F("attempts") + 1):
        return False
    if Batch.objects.values_list("attempts", flat=True).get(pk=batch_id) > MAX_ATTEMPTS:
        batch = Batch.objects.select_related("arm__endpoint", "arm__strategy").get(pk=batch_id)
        run_fail(
            run_id=batch.run_id,
            error=f"batch {batch.index} of arm {batch.arm} failed {MAX_ATTEMPTS} times while "
            f"{'generating' if phase == 'generate' else 'scoring'}; the worker log has the errors",
        )
        return False
    return True


def run_fail(*, run_id: int, error: str) -> bool:
    return bool(
        Run.objects.filter(pk=run_id, status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).update(
            status=RunStatus.FAILED, error=redact_stored(error)[:2000], finished_at=timezone.now()
        )
    )


def _heartbeat(batch_id: int):
    """Keep the batch's lease alive from a side thread while slow work (model calls) runs."""
    return heartbeat(Batch.objects.filter(pk=batch_id), name=f"batch-{batch_id}")


# --- generation -----------------------------------------------------------------------------------


def _cache_key(endpoint: Endpoint, params: dict, messages: list[dict]) -> str:
    key = {"p": endpoint.provider, "m": endpoint.model, "u": endpoint.base_url, "g": params, "x": messages}
    if endpoint.adapter:  # a local fine-tune: the base model's name with other weights
        key["a"] = endpoint.adapter
    payload = json.dumps(key, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _cache_scrub(rows, redact) -> None:
    """Mask secrets in cached answers read (rows cached before answers were redacted, or before a
    variable was set), in memory and in the cache, so they are served and kept masked."""
    for row in rows:
        masked = redact(row.output)
        if masked != row.output:
            row.output = masked
            _reconnecting(lambda row=row: CompletionCache.objects.filter(pk=row.pk).update(output=row.output))


def _examples(arm: Arm, version: SuiteVersion) -> list[strategies.Example]:
    if arm.strategy.kind != "few-shot":
        return []
    rows = version.cases.filter(split=Split.TRAIN).order_by("position").values_list("input", "expected")
    pool = []
    for case_input, expected in rows:
        if expected is None:
            continue
        output = expected[0] if isinstance(expected, list) and expected else expected
        if isinstance(output, str | int | float):
            pool.append(strategies.Example(input=case_input, output=str(output)))
    return pool


def _render(arm: Arm, version: SuiteVersion, case: Case, pool: list[strategies.Example]) -> list[dict]:
    params = arm.strategy.params or {}
    examples = strategies.pick_examples(
        pool, int(params.get("k", 3)), seed=f"{version.pk}:{case.key}", exclude_input=case.input
    )
    variables = (case.metadata or {}).get("vars")
    ctx = strategies.RenderContext(
        task_type=version.task_type,
        labels=tuple(version.labels),
        examples=examples,
        params=params,
        vars=variables if isinstance(variables, dict) else {},
    )
    return strategies.render(arm.strategy.kind, case.input, ctx)


def batch_generate(*, batch_id: int) -> None:
    """Call the arm's endpoint for every (case, sample) of the batch that has no result yet."""
    batch = Batch.objects.select_related("run", "arm__endpoint", "arm__strategy").filter(pk=batch_id).first()
    if batch is None or batch.run.status != RunStatus.RUNNING:
        return
    if batch.generated_at is not None:
        if batch.scored_at is None:
            enqueue("score_batch", batch.pk)
        return
    if not _claim(batch_id, "generate"):
        log.info("batch %s is held by a live worker; skipping", batch_id)
        return
    run, arm = batch.run, batch.arm
    version = SuiteVersion.objects.select_related("suite").get(pk=run.suite_version_id)
    cases = {c.pk: c for c in Case.objects.filter(pk__in=batch.case_ids)}
    done = set(Result.objects.filter(arm=arm, case_id__in=batch.case_ids).values_list("case_id", "sample"))
    todo = [
        (cases[cid], sample)
        for cid in batch.case_ids
        if cid in cases
        for sample in range(run.repeats)
        if (cid, sample) not in done
    ]
    with _heartbeat(batch_id):
        if todo:
            _generate(run=run, arm=arm, version=version, todo=todo)
    with transaction.atomic():
        # attempts count per step: scoring starts afresh.
        marked = Batch.objects.filter(pk=batch_id, generated_at__isnull=True).update(
            generated_at=timezone.now(), heartbeat_at=None, attempts=0
        )
        if marked:
            enqueue("score_batch", batch_id)


def _generate(*, run: Run, arm: Arm, version: SuiteVersion, todo: list[tuple[Case, int]]) -> None:
    endpoint = arm.endpoint
    params = dict(endpoint.params or {})
    gen_params = GenerationParams.from_dict(params)
    cacheable = not gen_params.temperature
    # Without the cache the model is called, and its answers replace the cached ones (identical
    # prompts within a batch are still sent once): later runs see the model as it answers now.
    read_cache = cacheable and run.use_cache
    # Secrets (the endpoint's key...) are masked in whatever the model answers before it is stored.
    redact = redactor()
    pool = _examples(arm, version)
    prompts = [_render(arm, version, case, pool) for case, _ in todo]
    keys = [_cache_key(endpoint, params, p) for p in prompts] if cacheable else [None] * len(prompts)
    cached = (
        {c.key: c for c in CompletionCache.objects.filter(key__in=[k for k in keys if k])}
        if read_cache
        else {}
    )
    _cache_scrub(cached.values(), redact)

    completions: list[Completion | None] = [None] * len(todo)
    from_cache = [False] * len(todo)
    for i, key in enumerate(keys):
        if key and key in cached:
            c = cached[key]
            completions[i] = Completion(
                text=c.output,
                prompt_tokens=c.prompt_tokens,
                completion_tokens=c.completion_tokens,
                latency_ms=c.latency_ms,
                cost=c.cost,
                compute_seconds=c.compute_seconds,
            )
            from_cache[i] = True
    missing = [i for i, c in enumerate(completions) if c is None]
    # At temperature 0 repeated samples (and identical prompts) are the same request: call once.
    first_of: dict[str, int] = {}
    copies: dict[int, list[int]] = {}
    for i in list(missing):
        if keys[i] is not None and keys[i] in first_of:
            copies.setdefault(first_of[keys[i]], []).append(i)
            missing.remove(i)
        elif keys[i] is not None:
            first_of[keys[i]] = i
    try:
        provider = endpoint_provider(endpoint) if missing else None
    except ProviderError as exc:
        provider = None
        for i in missing + [c for group in copies.values() for c in group]:
            completions[i] = Completion(error=str(exc))
        missing = []
    ready = [i for i in range(len(todo)) if completions[i] is not None]
    _save(arm, todo, prompts, completions, from_cache, keys, ready, redact)

    def settle(i: int, completion: Completion) -> list[int]:
        """Record the answer to todo[i] and to the identical prompts that waited for it."""
        completions[i] = completion
        for copy in copies.get(i, []):
            completions[copy], from_cache[copy] = completion, completion.ok
        return [i, *copies.get(i, [])]

    try:
        if missing and hasattr(provider, "complete_iter"):
            _stream(run, provider, [prompts[i] for i in missing], gen_params, missing, settle,
                    lambda done: _save(arm, todo, prompts, completions, from_cache, keys, done, redact),
                    flush_every=max(32, 2 * endpoint.max_concurrency))  # fmt: skip
            return
        # A local model answers a chunk at a time: a cancel is noticed between chunks.
        step = max(settings.FTVP_LOCAL_BATCH, endpoint.max_concurrency * 2)
        for start in range(0, len(missing), step):
            if not _running(run.pk):
                return
            chunk = missing[start : start + step]
            try:
                got = provider.complete_many([prompts[i] for i in chunk], gen_params)
            except ProviderError as exc:  # the endpoint as a whole is unusable (e.g. model missing)
                got = [Completion(error=str(exc)) for _ in chunk]
            done = [j for i, completion in zip(chunk, got, strict=True) for j in settle(i, completion)]
            _save(arm, todo, prompts, completions, from_cache, keys, done, redact)
    finally:
        close = getattr(provider, "close", None)
        if close is not None:
            close()


# Answers are written as they arrive, at least this often, so a run's progress is live and a killed
# worker loses little; more often costs a commit each.
FLUSH_SECONDS = 1.0


def _running(run_id: int) -> bool:
    return _reconnecting(lambda: Run.objects.filter(pk=run_id, status=RunStatus.RUNNING).exists())


# A write that fails because the database connection dropped (a restart, a failover, a killed
# backend) is tried again on a fresh connection this many times before the batch gives up.
DB_ATTEMPTS = 3


def _reconnecting(write):
    """`write()`, again on a fresh connection when the connection dropped under it: answers already
    paid for are saved, not asked of the model again. Only outside a transaction (inside one, the
    caller's transaction is gone with the connection) and only for idempotent writes (upserts)."""
    for attempt in range(1, DB_ATTEMPTS + 1):
        try:
            return write()
        except (OperationalError, InterfaceError) as exc:
            if connection.in_atomic_block or attempt == DB_ATTEMPTS:
                raise
            log.warning(
                "database write failed (%s); reconnecting, attempt %d/%d", exc, attempt + 1, DB_ATTEMPTS
            )
            connection.close()
            time.sleep(0.5 * attempt)


def _stream(run, provider, prompts, params, indices, settle, save, *, flush_every: int) -> None:
    """Call the endpoint for every prompt, `flush_every` answers or FLUSH_SECONDS at a time saved as
    they arrive (no chunk waits for its slowest call). A cancelled run is noticed at a save: the calls
    not started are dropped, and the answers of the calls in flight are still saved."""
    pending: list[int] = []
    last = time.monotonic()
    stop = threading.Event()
    stream = provider.complete_iter(prompts, params, stop=stop)
    try:
        for position, completion in stream:
            pending.extend(settle(indices[position], completion))
            if len(pending) >= flush_every or time.monotonic() - last >= FLUSH_SECONDS:
                save(pending)
                pending, last = [], time.monotonic()
                if not stop.is_set() and not _running(run.pk):
                    stop.set()
    except BaseException:
        # A failed save (the database gone) or a worker shutting down: the calls not started are
        # dropped, and the batch is called again by whoever takes its lease next (saved answers are
        # skipped then); the answers not saved yet are not worth a second failure here.
        stop.set()
        stream.close()
        log.warning("batch of run #%s stopped with %d answer(s) not saved", run.pk, len(pending))
        raise
    save(pending)


def _save(arm, todo, prompts, completions, from_cache, keys, indices, redact) -> None:
    """Upsert the results (and cache the answers) of `indices`; every text a model or server sent
    back (output, extracted answer, error) is stored with `redact`'s secrets masked."""
    if not indices:
        return
    endpoint, strategy = arm.endpoint, arm.strategy
    price_in, price_out = float(endpoint.price_in), float(endpoint.price_out)
    rows, cache_rows = [], []
    for i in indices:
        case, sample = todo[i]
        c = completions[i]
        text = redact(c.text)
        cost = (
            c.cost
            if c.cost is not None
            else token_cost(c.prompt_tokens, c.completion_tokens, price_in, price_out)
        )
        rows.append(
            Result(
                arm=arm,
                case=case,
                sample=sample,
                prompt=prompts[i],
                output=text,
                answer=strategies.extract(strategy.kind, text, strategy.params) if c.ok else "",
                prompt_tokens=c.prompt_tokens,
                completion_tokens=c.completion_tokens,
                latency_ms=c.latency_ms,
                compute_seconds=c.compute_seconds,
                cost=cost if c.ok else 0.0,
                error=redact(c.error)[:2000],
                cached=from_cache[i],
            )
        )
        if keys[i] and c.ok and not from_cache[i]:
            cache_rows.append(
                CompletionCache(
                    key=keys[i],
                    output=text,
                    prompt_tokens=c.prompt_tokens,
                    completion_tokens=c.completion_tokens,
                    latency_ms=c.latency_ms,
                    cost=c.cost,
                    compute_seconds=c.compute_seconds,
                )
            )
    _reconnecting(lambda: _upsert(rows, cache_rows))


def _upsert(rows: list[Result], cache_rows: list[CompletionCache]) -> None:
    with transaction.atomic():
        Result.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["arm", "case", "sample"],
            update_fields=[
                "prompt", "output", "answer", "prompt_tokens", "completion_tokens",
                "latency_ms", "compute_seconds", "cost", "error", "cached",
            ],
        )  # fmt: skip
        if cache_rows:  # the latest answer wins: a run that bypassed the cache refreshes it
            CompletionCache.objects.bulk_create(
                cache_rows,
                update_conflicts=True,
                unique_fields=["key"],
                update_fields=[
                    "output",
                    "prompt_tokens",
                    "completion_tokens",
                    "latency_ms",
                    "cost",
                    "compute_seconds",
                ],
            )


# --- scoring and finalize ------------------------------------------------------------------------


def batch_score(*, batch_id: int) -> None:
    """Score the batch's results; the last batch scored enqueues finalize_run."""
    batch = Batch.objects.select_related("run__suite_version__suite").filter(pk=batch_id).first()
    if batch is None or batch.scored_at is not None or batch.run.status != RunStatus.RUNNING:
        return
    if not _claim(batch_id, "score"):
        return
    scoring = current_scoring(batch.run_id)
    results = list(  # the rendered prompt is not scored: not read (it is most of a row)
        Result.objects.filter(arm_id=batch.arm_id, case_id__in=batch.case_ids)
        .select_related("case")
        .defer("prompt")
    )
    with _heartbeat(batch_id):
        scoring_apply(scoring=scoring, results=results)
    now = timezone.now()
    with transaction.atomic():
        save_scores(results)
        marked = Batch.objects.filter(pk=batch_id, scored_at__isnull=True).update(
            scored_at=now, heartbeat_at=None
        )
        if marked:
            Run.objects.filter(pk=batch.run_id).update(batches_scored=F("batches_scored") + 1)
    if marked:
        run = Run.objects.only("batches_scored", "batches_total").get(pk=batch.run_id)
        if run.batches_scored >= run.batches_total:
            enqueue("finalize_run", run.pk)


def run_finalize(*, run_id: int) -> bool:
    """Aggregate each arm (means with CIs, costs, latency) and mark the run succeeded, once."""
    run = Run.objects.select_related("suite_version__suite").filter(pk=run_id).first()
    if run is None or run.status != RunStatus.RUNNING:
        return False
    if Batch.objects.filter(run_id=run_id, scored_at__isnull=True).exists():
        return False
    with transaction.atomic():
        finished = Run.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(
            status=RunStatus.SUCCEEDED, finished_at=timezone.now()
        )
        if finished:
            scoring_finish(scoring=current_scoring(run_id))
    return bool(finished)


def runs_recover(*, startup: bool = False, orphaned_before=None) -> dict[str, int]:
    """Re-enqueue work whose message or worker was lost. Run by every worker, on start and then
    every FTVP_STALL_SECONDS / 2.

    - Batches whose lease went stale (their worker died): the lease is released as they are
      re-enqueued, so a batch still waiting in a long queue is not re-enqueued again.
    - Batches nobody holds: on a worker's start (a killed worker's prefetched messages are gone),
      and whenever the workers have been idle for FTVP_STALL_SECONDS (no live lease anywhere) while
      a run made no progress: their messages were lost (a broker blip, a worker killed between two
      steps).
    - Runs still queued: on start, and when queued for longer than FTVP_STALL_SECONDS.
    Duplicates are harmless: each step checks its lease and its done-mark first.

    `orphaned_before`: a starting worker's sweep when no other worker can hold a lease (every other
    worker is known to have exited, see worker_selectors.others_may_hold_leases): leases taken, and
    analyses and re-scores sent, before that moment are orphaned, recovered now instead of once
    FTVP_STALL_SECONDS have passed.
    """
    counts = {"runs": 0, "generate": 0, "score": 0, "finalize": 0}
    stale_before = _stale_before()
    if orphaned_before is not None:
        stale_before = max(stale_before, orphaned_before)
    queued = Run.objects.filter(status=RunStatus.QUEUED)
    if not startup:
        queued = queued.filter(created_at__lt=stale_before)
    for run_id in queued.values_list("id", flat=True):
        enqueue("start_run", run_id)
        counts["runs"] += 1
    pending = Batch.objects.filter(run__status=RunStatus.RUNNING, scored_at__isnull=True)
    lost = _runs_with_lost_messages(startup=startup, stale_before=stale_before)
    # Those unheld now: a stale lease released below is sent by _resend_stale, not once more here.
    unheld = list(pending.filter(run_id__in=lost, heartbeat_at__isnull=True).values_list("id", flat=True))
    _resend_stale(pending.filter(heartbeat_at__lt=stale_before), counts)
    _resend_unheld(pending.filter(pk__in=unheld, heartbeat_at__isnull=True), counts)
    for run_id in Run.objects.filter(
        status=RunStatus.RUNNING, batches_scored__gte=F("batches_total")
    ).values_list("id", flat=True):
        enqueue("finalize_run", run_id)
        counts["finalize"] += 1
    for run_id in runs_unanalysed_before(stale_before):  # analysing again is harmless
        enqueue("analyse_run", run_id)
        counts["analyse"] = counts.get("analyse", 0) + 1
    if startup:  # a re-score whose worker died (re-scoring again is harmless)
        for scoring_id in scorings_unfinished_before(stale_before):
            enqueue("rescore_run", scoring_id)
            counts["rescore"] = counts.get("rescore", 0) + 1
    return counts


def _runs_with_lost_messages(*, startup: bool, stale_before) -> list[int]:
    running = Run.objects.filter(status=RunStatus.RUNNING)
    if startup:
        return list(running.values_list("id", flat=True))
    if Batch.objects.filter(run__status=RunStatus.RUNNING, heartbeat_at__gte=stale_before).exists():
        return []  # a worker is busy: unheld batches are waiting their turn in the queue
    idle = []
    rows = running.annotate(generated=Max("batches__generated_at"), scored=Max("batches__scored_at"))
    for run_id, started, generated, scored in rows.values_list("id", "started_at", "generated", "scored"):
        last_progress = max(t for t in (started, generated, scored) if t is not None) if started else None
        if last_progress is None or last_progress < stale_before:
            idle.append(run_id)
    return idle


def _resend_stale(stale, counts: dict[str, int]) -> None:
    """Batches whose lease went stale (their worker died): each lease is released, if it is still
    stale, as the batch's next step is sent, so a batch is not sent twice by two sweeps."""
    for batch_id, generated_at in stale.values_list("id", "generated_at"):
        with transaction.atomic():
            if stale.filter(pk=batch_id).update(heartbeat_at=None):
                _enqueue_next_step(batch_id, generated_at is not None, counts)


def _resend_unheld(unheld, counts: dict[str, int]) -> None:
    """Batches nobody holds whose messages were lost: their next step, sent again."""
    for batch_id, generated_at in unheld.values_list("id", "generated_at"):
        _enqueue_next_step(batch_id, generated_at is not None, counts)


def _enqueue_next_step(batch_id: int, generated: bool, counts: dict[str, int]) -> None:
    enqueue("score_batch" if generated else "run_batch", batch_id)
    counts["score" if generated else "generate"] += 1
