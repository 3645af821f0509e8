"""Generate a batch: render the prompts, serve temperature-0 prompts from the completion cache,
call the endpoint (answers saved as they arrive, secrets masked), and send the batch on to scoring.

A retried batch calls the model only for the cases that have no result yet; a cancelled run stops
at the next chunk; a save whose database connection dropped is made again on a fresh connection, so
answers already paid for are not asked for again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from evaluations import retrieval, strategies
from evaluations.analysis.costs import token_cost
from evaluations.models import (
    Arm,
    Batch,
    Case,
    CompletionCache,
    Endpoint,
    KnowledgeChunk,
    Result,
    Run,
    RunStatus,
    Split,
    SuiteVersion,
)
from evaluations.providers.base import Completion, GenerationParams, ProviderError
from evaluations.scoring.embeddings import CachedEmbedder
from evaluations.selectors.strategies import frozen_example_leaks
from evaluations.services import queue
from evaluations.services.endpoints import endpoint_provider
from evaluations.services.result_scores import DBVectorStore, get_embedder
from evaluations.services.runs import batch_claim, batch_heartbeat, run_fail
from evaluations.services.secrets import redactor

log = logging.getLogger(__name__)


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
    """The train split's examples (never the test split's) for a strategy that shows examples."""
    if arm.strategy.kind not in strategies.FEW_SHOT_KINDS:
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


def _nearest(arm: Arm, pool: list[strategies.Example], cases: list[Case]) -> dict[int, tuple]:
    """For `few-shot-nearest` (and `rag+few-shot-nearest`): each case's k nearest train examples, by
    the embeddings of their inputs (the suite's embedder and its database cache: a pool is embedded
    once, then read back)."""
    if arm.strategy.kind not in strategies.NEAREST_KINDS or not pool:
        return {}
    params = arm.strategy.params or {}
    # With retrieval, `k` counts passages and `shots` the demonstrations.
    shots = params.get("shots", 3) if arm.strategy.kind in strategies.RAG_KINDS else params.get("k", 3)
    embedder = CachedEmbedder(get_embedder(), DBVectorStore())
    pool_vectors = embedder.embed([strategies.input_text(ex.input) for ex in pool])
    unique = list({case.pk: case for case in cases}.values())
    queries = embedder.embed([strategies.input_text(case.input) for case in unique])
    return {
        case.pk: strategies.nearest_examples(
            pool,
            pool_vectors,
            query,
            int(shots),
            order=str(params.get("order", "nearest-last")),
            exclude_input=case.input,
        )
        for case, query in zip(unique, queries, strict=True)
    }


def _frozen_examples(arm: Arm, version: SuiteVersion) -> tuple[strategies.Example, ...]:
    """A `few-shot-optimized` strategy's demonstrations, frozen in its params by the search; all of
    them train cases of the run's version (a demonstration that is a test case would score the case
    on its own answer)."""
    examples = (arm.strategy.params or {}).get("examples")
    if not isinstance(examples, list) or not all(isinstance(e, dict) and "input" in e for e in examples):
        raise ValueError("its params hold no `examples` list; make it with `optimize_fewshot`")
    leaks = frozen_example_leaks(arm.strategy, version)
    if leaks:
        raise Unusable(
            f"its demonstrations {', '.join(leaks[:10])} are not train cases of {version} (test cases, "
            f"or cases of the version it was searched on); run `optimize_fewshot` on {version}"
        )
    return tuple(strategies.Example(input=e["input"], output=str(e.get("output", ""))) for e in examples)


class Unusable(ValueError):
    """A strategy this suite version cannot be prompted with (the sentence says what to do)."""


class NoKnowledge(Unusable):
    """A retrieval strategy on a suite version without knowledge documents."""


# Passages a retrieval strategy may put into one prompt, at most.
MAX_PASSAGES = 50


class _Corpus:
    """A suite version's knowledge chunks with their search index (a version is immutable)."""

    def __init__(self, rows: list[tuple[str, int, str]], index: retrieval.Index) -> None:
        self.rows = rows  # (doc id, chunk position, text), in the index's order
        self.index = index


_corpora: dict[tuple, _Corpus] = {}
_corpora_lock = threading.Lock()
_CORPORA_KEPT = 4


def _corpus(version: SuiteVersion, embedder: CachedEmbedder) -> _Corpus:
    """The version's corpus, built once per process (its chunks embedded once: the vectors are
    cached in the database, so another worker reads them back)."""
    # A version is immutable; its creation time tells it from another row that reused its id (a
    # restored or flushed database under a long-lived worker).
    key = (version.pk, version.created_at)
    with _corpora_lock:
        corpus = _corpora.get(key)
    if corpus is not None:
        return corpus
    rows = list(
        KnowledgeChunk.objects.filter(version=version)
        .order_by("doc__position", "position")
        .values_list("doc__doc_id", "position", "text")
    )
    if not rows:
        raise NoKnowledge(
            f"{version} has no knowledge documents to retrieve from; add them with "
            "`manage.py import_knowledge`, the suite page or a knowledge/ folder in the suite's zip"
        )
    corpus = _Corpus(rows, retrieval.Index([r[2] for r in rows], embedder.embed([r[2] for r in rows])))
    with _corpora_lock:
        if len(_corpora) >= _CORPORA_KEPT:
            _corpora.pop(next(iter(_corpora)))
        _corpora[key] = corpus
    return corpus


def _retrieve(arm: Arm, version: SuiteVersion, cases: list[Case]) -> dict[int, tuple[tuple, list[dict]]]:
    """For the retrieval strategies: each case's top-k passages (BM25 fused with embedding
    similarity) and what the result records of them ({doc, chunk, score}, best first)."""
    if arm.strategy.kind not in strategies.RAG_KINDS:
        return {}
    k = int((arm.strategy.params or {}).get("k", 3))
    if not 1 <= k <= MAX_PASSAGES:
        raise ValueError(f"k must be between 1 and {MAX_PASSAGES} passages; got {k}")
    embedder = CachedEmbedder(get_embedder(), DBVectorStore())
    corpus = _corpus(version, embedder)
    unique = list({case.pk: case for case in cases}.values())
    texts = [strategies.input_text(case.input) for case in unique]
    out = {}
    for case, text, vector in zip(unique, texts, embedder.embed(texts), strict=True):
        hits = corpus.index.search(text, vector, k)
        rows = [corpus.rows[h.index] for h in hits]
        passages = tuple(strategies.Passage(doc=doc, text=chunk) for doc, _, chunk in rows)
        got = [
            {"doc": doc, "chunk": position, "score": round(h.score, 6)}
            for (doc, position, _), h in zip(rows, hits, strict=True)
        ]
        out[case.pk] = (passages, got)
    return out


def _render(
    arm: Arm,
    version: SuiteVersion,
    case: Case,
    pool: list[strategies.Example],
    nearest: dict[int, tuple] | None = None,
    retrieved: dict[int, tuple] | None = None,
    frozen: tuple[strategies.Example, ...] | None = None,
) -> list[dict]:
    params = arm.strategy.params or {}
    kind = arm.strategy.kind
    if frozen is not None:
        # A labelling run answers train cases: a case is never its own demonstration.
        examples = tuple(e for e in frozen if e.input != case.input)
    elif kind in strategies.NEAREST_KINDS:
        examples = (nearest or {}).get(case.pk, ())
    elif kind not in strategies.FEW_SHOT_KINDS:
        examples = ()
    else:
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
        passages=(retrieved or {}).get(case.pk, ((), []))[0],
    )
    return strategies.render(kind, case.input, ctx)


def batch_generate(*, batch_id: int) -> None:
    """Call the arm's endpoint for every (case, sample) of the batch that has no result yet."""
    batch = Batch.objects.select_related("run", "arm__endpoint", "arm__strategy").filter(pk=batch_id).first()
    if batch is None or batch.run.status != RunStatus.RUNNING:
        return
    if batch.generated_at is not None:
        if batch.scored_at is None:
            queue.enqueue("score_batch", batch.pk)
        return
    if not batch_claim(batch_id, "generate"):
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
    with batch_heartbeat(batch_id):
        if todo:
            _generate(run=run, arm=arm, version=version, todo=todo)
    with transaction.atomic():
        # attempts count per step: scoring starts afresh.
        marked = Batch.objects.filter(pk=batch_id, generated_at__isnull=True).update(
            generated_at=timezone.now(), heartbeat_at=None, attempts=0
        )
        if marked:
            queue.enqueue("score_batch", batch_id)


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
    pool = _examples(arm, version) if arm.strategy.kind != "few-shot-optimized" else []
    try:
        frozen = _frozen_examples(arm, version) if arm.strategy.kind == "few-shot-optimized" else None
        nearest = _nearest(arm, pool, [case for case, _ in todo])
        retrieved = _retrieve(arm, version, [case for case, _ in todo])
    except Unusable as exc:
        run_fail(run_id=run.pk, error=f"strategy {arm.strategy}: {exc}, then run again")
        return
    except (TypeError, ValueError) as exc:  # the strategy's params (k, order) are not usable
        run_fail(run_id=run.pk, error=f"strategy {arm.strategy}: {exc}; fix its parameters, then run again")
        return
    prompts = [_render(arm, version, case, pool, nearest, retrieved, frozen) for case, _ in todo]
    chunks = [retrieved.get(case.pk, ((), []))[1] for case, _ in todo]
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
    _save(arm, todo, prompts, chunks, completions, from_cache, keys, ready, redact)

    def settle(i: int, completion: Completion) -> list[int]:
        """Record the answer to todo[i] and to the identical prompts that waited for it."""
        completions[i] = completion
        for copy in copies.get(i, []):
            completions[copy], from_cache[copy] = completion, completion.ok
        return [i, *copies.get(i, [])]

    try:
        if missing and hasattr(provider, "complete_iter"):

            def save(done: list[int]) -> None:
                _save(arm, todo, prompts, chunks, completions, from_cache, keys, done, redact)

            _stream(run, provider, [prompts[i] for i in missing], gen_params, missing, settle, save,
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
            _save(arm, todo, prompts, chunks, completions, from_cache, keys, done, redact)
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


def _save(arm, todo, prompts, chunks, completions, from_cache, keys, indices, redact) -> None:
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
                retrieved=chunks[i],
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
                "prompt", "retrieved", "output", "answer", "prompt_tokens", "completion_tokens",
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
