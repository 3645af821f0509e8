"""Synthetic examples: a model writes new input/expected pairs from k seed train cases with a few-shot
prompt (a version of the `synthesize` strategy); near-duplicates (of each other, of the seeds and of
the version's train cases) and copies of test cases are dropped and counted; the rest wait for review;
the accepted ones become train cases of the suite's next version, never test cases.

- `synthetic_create` checks and queues a generation (the `synthesize` task, queue `llm`);
- `synthetic_execute` (the task) calls the endpoint in as many calls as needed, records tokens and
  cost as a run's results do (the provider's measured cost, else tokens x the endpoint's prices),
  embeds the candidates with the suite's embedder and its database cache and filters them
  (analysis/synthetic.py);
- `candidate_review`, `candidates_accept_all` review the candidates;
- `synthetic_promote` makes the new version: the source version's cases and knowledge unchanged, the
  accepted candidates after them as train cases `syn-<generation>-<position>`.
Each write is audited.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from evaluations import strategies
from evaluations.analysis import synthetic as logic
from evaluations.analysis.costs import token_cost
from evaluations.models import (
    CandidateStatus,
    Case,
    Endpoint,
    Provider,
    Split,
    Strategy,
    StrategyKind,
    Suite,
    SuiteVersion,
    SyntheticCandidate,
    SyntheticGeneration,
    SyntheticStatus,
)
from evaluations.providers.base import Completion, GenerationParams, ProviderError
from evaluations.scoring.embeddings import CachedEmbedder
from evaluations.services import queue
from evaluations.services.audit import audit_record
from evaluations.services.endpoints import base_url_check, endpoint_provider
from evaluations.services.finetune import normalised_input
from evaluations.services.knowledge import CASES_NOTE, carried_notes, cases_copy, knowledge_store
from evaluations.services.leases import heartbeat
from evaluations.services.result_scores import DBVectorStore, get_embedder
from evaluations.services.runs import stale_before
from evaluations.services.secrets import redactor

log = logging.getLogger(__name__)

MAX_N = 1000
MAX_SEEDS = 50
DEFAULT_THRESHOLD = 0.92
BUILTIN = "synthesize"
# Tokens an answer may use per pair asked for (the endpoint's max_tokens is for one answer of a case).
TOKENS_PER_PAIR = 200
# Extra rounds of calls when the answers held fewer pairs than asked (unparseable lines, short answers).
EXTRA_ROUNDS = 2


class SyntheticError(ValueError):
    """A generation, review or promotion that cannot be made as asked (the sentence says why)."""


def synthesize_strategy(version: int | None = None) -> Strategy:
    """A version of the built-in `synthesize` strategy (the latest by default); version 1 is put back
    when missing (a flushed database)."""
    rows = Strategy.objects.filter(name=BUILTIN, kind=StrategyKind.SYNTHESIZE)
    if version is not None:
        found = rows.filter(version=version).first()
        if found is None:
            raise SyntheticError(f"strategy: synthesize has no version {version}")
        return found
    found = rows.order_by("-version").first()
    if found is None:
        found, _ = Strategy.objects.get_or_create(
            name=BUILTIN, version=1,
            defaults={"kind": StrategyKind.SYNTHESIZE, "params": dict(logic.DEFAULT_PARAMS),
                      "description": "Synthetic examples: the built-in generation prompt."},
        )  # fmt: skip
    return found


def synthesize_strategy_version(
    *, system: str, instruction: str, per_call: int, description: str = "", user=None
) -> Strategy:
    """The next version of the `synthesize` strategy with this prompt (the previous version's other
    params kept), checked first: `per_call` 1-20, the instruction's placeholders known. Audited."""
    params = dict(synthesize_strategy().params or {})
    params.update(
        {"system": str(system).strip(), "instruction": str(instruction).strip(), "per_call": per_call}
    )
    if not params["system"] or not params["instruction"]:
        raise SyntheticError("the system message and the instruction may not be empty")
    try:
        logic.per_call(params)
        logic.render_prompt([logic.Pair("x", "y")], 1, params)
    except ValueError as exc:
        raise SyntheticError(str(exc)) from None
    with transaction.atomic():
        latest = Strategy.objects.select_for_update().filter(name=BUILTIN).order_by("-version").first()
        if latest is not None and latest.params == params:
            raise SyntheticError(f"the prompt is the same as {latest}'s: nothing to save")
        strategy = Strategy.objects.create(
            name=BUILTIN,
            version=(latest.version if latest else 0) + 1,
            kind=StrategyKind.SYNTHESIZE,
            params=params,
            description=str(description).strip() or "Synthetic examples: an edited generation prompt.",
        )
        audit_record(
            actor=user,
            action="strategy.create",
            obj=strategy,
            after={
                "name": strategy.name,
                "version": strategy.version,
                "kind": strategy.kind,
                "params": params,
            },
        )
    return strategy


def _check_number(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SyntheticError(f"{name} must be a whole number from {low} to {high}; got {value!r}")
    return value


def _seed_cases(version: SuiteVersion, seed_keys: object) -> list[Case]:
    if not isinstance(seed_keys, list | tuple) or not seed_keys:
        raise SyntheticError("seeds: choose at least one seed case (k >= 1) by its key")
    if len(seed_keys) > MAX_SEEDS:
        raise SyntheticError(f"seeds: at most {MAX_SEEDS} seed cases; got {len(seed_keys)}")
    keys = [str(k).strip() for k in seed_keys]
    if len(set(keys)) != len(keys):
        raise SyntheticError("seeds: a key is listed twice")
    cases = {c.key: c for c in version.cases.filter(key__in=keys)}
    missing = [k for k in keys if k not in cases]
    if missing:
        raise SyntheticError(f"seeds: {version} has no case {', '.join(missing[:10])}")
    tests = [k for k in keys if cases[k].split != Split.TRAIN]
    if tests:
        raise SyntheticError(
            f"seeds: {', '.join(tests[:10])} are test cases; seeds must be train cases (examples written "
            "from a test case would teach the model what it is scored on)"
        )
    unlabelled = [k for k in keys if not logic.valid_expected(cases[k].expected)]
    if unlabelled:
        raise SyntheticError(f"seeds: {', '.join(unlabelled[:10])} have no expected output to show")
    return [cases[k] for k in keys]


def _check_endpoint(endpoint: Endpoint) -> None:
    if endpoint.provider not in (Provider.OPENAI, Provider.LOCAL):
        raise SyntheticError(f"endpoint: {endpoint.name} has an unknown provider {endpoint.provider!r}")
    if endpoint.provider == Provider.OPENAI:
        try:
            base_url_check(endpoint.base_url)
        except ValidationError as exc:
            raise SyntheticError(f"endpoint: {endpoint.name}: {' '.join(exc.messages)}") from None


def synthetic_create(
    *,
    suite_version: SuiteVersion,
    endpoint: Endpoint,
    seed_keys: list[str],
    n: int,
    strategy: Strategy | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    user=None,
) -> SyntheticGeneration:
    """Check a generation of `n` candidates from the seed train cases `seed_keys` of `suite_version`
    with `endpoint` and a `synthesize` strategy version (the latest by default), store it and queue it
    (once committed). SyntheticError says what is wrong; nothing is written then."""
    _check_number("n", n, 1, MAX_N)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 < threshold <= 1:
        raise SyntheticError(
            f"threshold must be above 0 and at most 1 (cosine similarity); got {threshold!r}"
        )
    seeds = _seed_cases(suite_version, seed_keys)
    _check_endpoint(endpoint)
    strategy = strategy or synthesize_strategy()
    if strategy.kind != StrategyKind.SYNTHESIZE:
        raise SyntheticError(f"strategy: {strategy} is a {strategy.kind} strategy; choose a synthesize one")
    try:
        logic.per_call(strategy.params)
        logic.render_prompt([logic.Pair("x", "y")], 1, strategy.params)
    except ValueError as exc:
        raise SyntheticError(f"strategy {strategy}: {exc}") from None
    with transaction.atomic():
        generation = SyntheticGeneration.objects.create(
            suite_version=suite_version,
            endpoint=endpoint,
            strategy=strategy,
            seed_keys=[c.key for c in seeds],
            requested=n,
            threshold=float(threshold),
            created_by=user if getattr(user, "is_authenticated", False) else None,
        )
        audit_record(
            actor=user,
            action="synthetic.create",
            obj=generation,
            suite_id=suite_version.suite_id,
            after={
                "suite_version": suite_version.number,
                "endpoint": endpoint.name,
                "strategy": str(strategy),
                "seeds": generation.seed_keys,
                "n": n,
                "threshold": generation.threshold,
            },
        )
        queue.enqueue("synthesize", generation.pk)
    return generation


def synthetic_cancel(*, generation_id: int, user=None) -> bool:
    """Cancel a queued or running generation (its worker stops at the next chunk of calls); False
    when it had finished."""
    with transaction.atomic():
        done = SyntheticGeneration.objects.filter(
            pk=generation_id, status__in=[SyntheticStatus.QUEUED, SyntheticStatus.RUNNING]
        ).update(status=SyntheticStatus.CANCELLED, finished_at=timezone.now())
        if done:
            generation = SyntheticGeneration.objects.select_related("suite_version").get(pk=generation_id)
            audit_record(
                actor=user,
                action="synthetic.cancel",
                obj=generation,
                suite_id=generation.suite_version.suite_id,
            )
    return bool(done)


# --- the task ---------------------------------------------------------------------------------------


def _call_cost(endpoint: Endpoint, c: Completion) -> float:
    """USD of one call as a run's result records it: the provider's measured cost (local compute),
    else tokens x the endpoint's prices; a failed call costs nothing."""
    if not c.ok:
        return 0.0
    if c.cost is not None:
        return c.cost
    return token_cost(
        c.prompt_tokens, c.completion_tokens, float(endpoint.price_in), float(endpoint.price_out)
    )


def _gen_params(endpoint: Endpoint, params: dict, size: int) -> GenerationParams:
    """The endpoint's generation params, with room for `size` pairs and the strategy's temperature."""
    merged = dict(endpoint.params or {})
    if "temperature" in params:
        merged["temperature"] = params["temperature"]
    wanted = params.get("max_tokens") or TOKENS_PER_PAIR * size
    merged["max_tokens"] = max(int(merged.get("max_tokens") or 0), int(wanted))
    return GenerationParams.from_dict(merged)


def synthetic_recover(*, startup: bool = False, stale: datetime | None = None) -> int:
    """Send again the generations whose message or worker was lost (the workers' recovery sweep):
    queued ones (on a worker's start, or queued for longer than FTVP_STALL_SECONDS) and running ones
    whose heartbeat went stale. A duplicate is harmless: the task claims it first."""
    stale = stale or stale_before()
    queued = SyntheticGeneration.objects.filter(status=SyntheticStatus.QUEUED)
    if not startup:
        queued = queued.filter(created_at__lt=stale)
    lost = SyntheticGeneration.objects.filter(status=SyntheticStatus.RUNNING).filter(
        Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True, started_at__lt=stale)
    )
    ids = list(queued.values_list("id", flat=True)) + list(lost.values_list("id", flat=True))
    for generation_id in ids:
        queue.enqueue("synthesize", generation_id)
    return len(ids)


def _status(generation_id: int) -> str | None:
    return SyntheticGeneration.objects.filter(pk=generation_id).values_list("status", flat=True).first()


class _Tally:
    def __init__(self) -> None:
        self.calls = self.failed = self.prompt_tokens = self.completion_tokens = self.unparseable = 0
        self.cost = 0.0
        self.first_error = ""


def _generate(generation: SyntheticGeneration, seeds: list[Case], tally: _Tally) -> list[logic.Pair]:
    """Ask the endpoint for the generation's N pairs; the pairs read, at most N."""
    version, endpoint, params = (
        generation.suite_version,
        generation.endpoint,
        generation.strategy.params or {},
    )
    size = logic.per_call(params)
    seed_pairs = [logic.Pair(input=c.input, expected=c.expected) for c in seeds]
    redact = redactor()
    provider = endpoint_provider(endpoint)
    pairs: list[logic.Pair] = []
    chunk = max(4, 2 * endpoint.max_concurrency)
    try:
        for round_ in range(1 + EXTRA_ROUNDS):
            wanted = generation.requested - len(pairs)
            if wanted <= 0:
                break
            plan = logic.plan_calls(wanted, size)
            offset = tally.calls  # later rounds rotate the seeds on
            prompts = [
                logic.render_prompt(
                    seed_pairs, asked, params, task_type=version.task_type, labels=tuple(version.labels),
                    batch=offset + i, batches=offset + len(plan),
                )
                for i, asked in enumerate(plan)
            ]  # fmt: skip
            gen_params = _gen_params(endpoint, params, size)
            failed_before = tally.failed
            for start in range(0, len(prompts), chunk):
                if _status(generation.pk) != SyntheticStatus.RUNNING:
                    return pairs  # cancelled
                try:
                    got = provider.complete_many(prompts[start : start + chunk], gen_params)
                except ProviderError as exc:
                    got = [Completion(error=str(exc)) for _ in prompts[start : start + chunk]]
                for asked, c in zip(plan[start : start + chunk], got, strict=True):
                    tally.calls += 1
                    tally.prompt_tokens += c.prompt_tokens or 0
                    tally.completion_tokens += c.completion_tokens or 0
                    tally.cost += _call_cost(endpoint, c)
                    if not c.ok:
                        tally.failed += 1
                        tally.first_error = tally.first_error or redact(c.error)
                        continue
                    read, bad = logic.parse_pairs(redact(c.text))
                    tally.unparseable += bad
                    pairs.extend(read[:asked])
            log.info(
                "synthetic generation #%s: round %d, %d pair(s) so far", generation.pk, round_, len(pairs)
            )
            if tally.failed - failed_before == len(prompts):
                break  # every call of the round failed: another round would fail the same way
    finally:
        close = getattr(provider, "close", None)
        if close is not None:
            close()
    return pairs[: generation.requested]


def _verdicts(generation: SyntheticGeneration, pairs: list[logic.Pair]) -> list[logic.Verdict]:
    """Each pair's verdict against the version's cases (the seeds among its train cases), by the
    suite's embedder with its database cache, as few-shot-nearest embeds."""
    seeds = set(generation.seed_keys)
    rows = list(generation.suite_version.cases.order_by("position").values_list("key", "input", "split"))
    references = [
        logic.Reference(
            label=f"{'test' if split == Split.TEST else ('seed' if key in seeds else 'train')}:{key}",
            normalised=normalised_input(case_input),
            is_test=split == Split.TEST,
        )
        for key, case_input, split in rows
    ]
    embedder = CachedEmbedder(get_embedder(), DBVectorStore())
    texts = [strategies.input_text(p.input) for p in pairs]
    vectors = embedder.embed(texts)
    ref_vectors = embedder.embed([strategies.input_text(case_input) for _, case_input, _ in rows])
    return logic.filter_near_duplicates(
        [normalised_input(p.input) for p in pairs], vectors, references, ref_vectors, generation.threshold
    )


def _claim(generation_id: int):
    """Take the generation: queued, or running with a stale heartbeat (its worker is gone). The claim's
    `started_at` is its token: a worker whose generation was taken over writes nothing at the end."""
    now = timezone.now()
    claimable = Q(status=SyntheticStatus.QUEUED) | Q(
        status=SyntheticStatus.RUNNING, heartbeat_at__lt=stale_before()
    )
    claimable |= Q(status=SyntheticStatus.RUNNING, heartbeat_at__isnull=True, started_at__lt=stale_before())
    claimed = SyntheticGeneration.objects.filter(claimable, pk=generation_id).update(
        status=SyntheticStatus.RUNNING, started_at=now, heartbeat_at=now
    )
    return now if claimed else None


def synthetic_execute(*, generation_id: int) -> None:
    """The queued generation (the `synthesize` task): claimed once (queued -> running), however
    often delivered, and again only when its worker is gone (a stale heartbeat); a failure is
    recorded on the generation with its reason."""
    token = _claim(generation_id)
    if token is None:
        return
    generation = SyntheticGeneration.objects.select_related(
        "suite_version__suite", "endpoint", "strategy", "created_by"
    ).get(pk=generation_id)
    tally = _Tally()
    pairs: list[logic.Pair] = []
    verdicts: list[logic.Verdict] = []
    error = ""
    try:
        seeds = list(generation.suite_version.cases.filter(key__in=generation.seed_keys))
        seeds.sort(key=lambda c: generation.seed_keys.index(c.key))
        rows = SyntheticGeneration.objects.filter(
            pk=generation_id, status=SyntheticStatus.RUNNING, started_at=token
        )
        # The heartbeat covers the embedding too: a big version's inputs take a while the first time.
        with heartbeat(rows, name=f"synthetic-{generation_id}"):
            pairs = _generate(generation, seeds, tally)
            verdicts = _verdicts(generation, pairs) if pairs else []
        if pairs:
            error = ""
        elif tally.calls and tally.failed == tally.calls:
            error = (
                f"every call to endpoint {generation.endpoint.name!r} failed ({tally.calls}); "
                f"the first error: {tally.first_error[:1500]}"
            )
        elif _status(generation_id) == SyntheticStatus.RUNNING:
            error = (
                f"the answers held no readable pair ({tally.unparseable} unparseable line(s)); "
                "check the strategy's prompt and the endpoint's max_tokens"
            )
    except Exception as exc:  # recorded on the generation, not left running
        log.exception("synthetic generation #%s failed", generation_id)
        error = redactor()(f"{type(exc).__name__}: {exc}")[:2000]
        pairs, verdicts = [], []
    _finish(generation, pairs, verdicts, tally, error, token)


def _finish(generation, pairs, verdicts, tally: _Tally, error: str, token) -> None:
    note = error
    if not error and tally.failed:
        note = f"{tally.failed} of {tally.calls} call(s) failed; the first error: {tally.first_error[:1500]}"
    if len(pairs) < generation.requested and not error and pairs:
        short = f"{len(pairs)} of the {generation.requested} pairs asked for were read"
        note = f"{note}; {short}" if note else short
    counts = {
        "calls": tally.calls,
        "prompt_tokens": tally.prompt_tokens,
        "completion_tokens": tally.completion_tokens,
        "cost": tally.cost,
        "unparseable": tally.unparseable,
        "generated": len(pairs),
        "dropped_duplicates": sum(v.reason == "duplicate" for v in verdicts),
        "dropped_test_copies": sum(v.reason == "test-copy" for v in verdicts),
        "error": note,
        "finished_at": timezone.now(),
    }
    with transaction.atomic():
        status = SyntheticStatus.FAILED if error else SyntheticStatus.SUCCEEDED
        finished = SyntheticGeneration.objects.filter(
            pk=generation.pk, status=SyntheticStatus.RUNNING, started_at=token
        ).update(status=status, heartbeat_at=None, **counts)
        if not finished:  # cancelled (or taken over) meanwhile: what was spent is recorded, nothing kept
            SyntheticGeneration.objects.filter(pk=generation.pk, status=SyntheticStatus.CANCELLED).update(
                **{
                    k: v
                    for k, v in counts.items()
                    if k in ("calls", "prompt_tokens", "completion_tokens", "cost")
                }
            )
            return
        SyntheticCandidate.objects.bulk_create(
            [
                SyntheticCandidate(
                    generation=generation,
                    position=i,
                    input=pair.input,
                    expected=pair.expected,
                    status=CandidateStatus.PENDING if v.kept else CandidateStatus.DROPPED,
                    drop_reason=v.reason,
                    nearest_similarity=None if v.similarity is None else round(v.similarity, 6),
                    nearest=v.nearest[:220],
                )
                for i, (pair, v) in enumerate(zip(pairs, verdicts, strict=True))
            ]
        )
        audit_record(
            actor=None,
            action=f"synthetic.{status}",
            obj=generation,
            suite_id=generation.suite_version.suite_id,
            after={k: v for k, v in counts.items() if k != "finished_at"} | {"status": status},
        )


# --- review -----------------------------------------------------------------------------------------


def _reviewable(generation: SyntheticGeneration) -> None:
    if generation.status != SyntheticStatus.SUCCEEDED:
        raise SyntheticError(f"generation #{generation.pk} is {generation.status}: nothing to review")
    if generation.promoted_version_id is not None:
        raise SyntheticError(
            f"generation #{generation.pk} was promoted into v{generation.promoted_version.number}; "
            "its candidates are final"
        )


def _test_inputs(version: SuiteVersion) -> dict[str, str]:
    return {
        normalised_input(case_input): key
        for key, case_input in version.cases.filter(split=Split.TEST).values_list("key", "input")
    }


ACTIONS = ("accept", "reject")


def candidate_review(
    *, candidate_id: int, action: str, input: object = None, expected: object = None, user=None
) -> SyntheticCandidate:
    """Accept (with `input` and/or `expected` edited, when given) or reject a candidate of a
    generation that succeeded and was not promoted; a dropped candidate is not reviewed."""
    if action not in ACTIONS:
        raise SyntheticError(f"action must be one of {', '.join(ACTIONS)}; got {action!r}")
    with transaction.atomic():
        candidate = (
            SyntheticCandidate.objects.select_for_update(of=("self",))
            .select_related("generation__suite_version", "generation__promoted_version")
            .filter(pk=candidate_id)
            .first()
        )
        if candidate is None:
            raise SyntheticError(f"candidate: no candidate #{candidate_id}")
        generation = candidate.generation
        _reviewable(generation)
        if candidate.status == CandidateStatus.DROPPED:
            raise SyntheticError(
                f"candidate {candidate.position} was dropped ({candidate.drop_reason}); it cannot be reviewed"
            )
        before = {"status": candidate.status, "input": candidate.input, "expected": candidate.expected}
        if action == "reject" and (input is not None or expected is not None):
            raise SyntheticError("an edit goes with accept, not reject")
        if input is not None:
            if isinstance(input, str):
                input = input.strip()
            if not logic.valid_input(input):
                raise SyntheticError("input: a non-empty text, or a list of {role, content} messages")
            copy = _test_inputs(generation.suite_version).get(normalised_input(input))
            if copy is not None:
                raise SyntheticError(
                    f"input: it is the input of test case {copy}; a train case may not copy it"
                )
            if input != candidate.input:
                candidate.input, candidate.edited = input, True
        if expected is not None:
            if isinstance(expected, str):
                expected = expected.strip()
            if not logic.valid_expected(expected):
                raise SyntheticError("expected: a non-empty text, or a list of acceptable texts")
            if expected != candidate.expected:
                candidate.expected, candidate.edited = expected, True
        candidate.status = CandidateStatus.ACCEPTED if action == "accept" else CandidateStatus.REJECTED
        candidate.reviewer = user if getattr(user, "is_authenticated", False) else None
        candidate.reviewed_at = timezone.now()
        candidate.save()
        audit_record(
            actor=user,
            action=f"synthetic.{action}",
            obj=generation,
            suite_id=generation.suite_version.suite_id,
            before=before,
            after={
                "candidate": candidate.position,
                "status": candidate.status,
                "edited": candidate.edited,
                "input": candidate.input,
                "expected": candidate.expected,
            },
        )
    return candidate


def candidates_accept_all(*, generation_id: int, user=None) -> int:
    """Accept every pending candidate of the generation as it is; how many were."""
    with transaction.atomic():
        generation = (
            SyntheticGeneration.objects.select_for_update(of=("self",))
            .select_related("suite_version", "promoted_version")
            .filter(pk=generation_id)
            .first()
        )
        if generation is None:
            raise SyntheticError(f"no generation #{generation_id}")
        _reviewable(generation)
        accepted = generation.candidates.filter(status=CandidateStatus.PENDING).update(
            status=CandidateStatus.ACCEPTED,
            reviewer=user if getattr(user, "is_authenticated", False) else None,
            reviewed_at=timezone.now(),
        )
        audit_record(
            actor=user,
            action="synthetic.accept_all",
            obj=generation,
            suite_id=generation.suite_version.suite_id,
            after={"accepted": accepted},
        )
    return accepted


# --- promotion --------------------------------------------------------------------------------------


def synthetic_promote(*, generation_id: int, user=None) -> SuiteVersion:
    """The suite's next version: every case of the generation's version unchanged (its knowledge
    documents too), then the accepted candidates as train cases `syn-<generation>-<position>`. All
    or nothing; the generation records the version (`promoted_version`)."""
    with transaction.atomic():
        generation = (
            SyntheticGeneration.objects.select_for_update(of=("self",))
            .select_related("suite_version__suite", "promoted_version")
            .filter(pk=generation_id)
            .first()
        )
        if generation is None:
            raise SyntheticError(f"no generation #{generation_id}")
        _reviewable(generation)
        accepted = list(generation.candidates.filter(status=CandidateStatus.ACCEPTED).order_by("position"))
        if not accepted:
            raise SyntheticError(f"generation #{generation.pk} has no accepted candidate to promote")
        source = generation.suite_version
        tests = _test_inputs(source)
        copies = [c.position for c in accepted if normalised_input(c.input) in tests]
        if copies:  # an edit cannot make one (candidate_review refuses it): a last guard
            raise SyntheticError(f"candidates {copies[:10]} copy a test case's input; reject them first")
        suite = Suite.objects.select_for_update().get(pk=source.suite_id)
        latest = suite.versions.order_by("-number").first()
        if latest.pk != source.pk:
            raise SyntheticError(
                f"generation #{generation.pk} was made on v{source.number}, and the suite's latest version "
                f"is v{latest.number}: a new version built on v{source.number} would drop v{latest.number}'s "
                f"changes. Generate again on v{latest.number} (its test cases are checked then)"
            )
        version = SuiteVersion.objects.create(
            suite=suite,
            number=latest.number + 1,
            source_name=source.source_name,
            source_format=source.source_format,
            task_type=source.task_type,
            labels=source.labels,
            default_assertions=source.default_assertions,
            notes=carried_notes(source),
            created_by=user if getattr(user, "is_authenticated", False) else None,
        )
        copied = cases_copy(source=source, target=version)
        knowledge_store(version=version, source=source)
        taken = set(source.cases.values_list("key", flat=True))
        position = (source.cases.aggregate(m=Max("position"))["m"] or -1) + 1
        rows = []
        for candidate in accepted:
            key = f"syn-{generation.pk}-{candidate.position}"
            while key in taken:
                key += "-x"
            taken.add(key)
            candidate.case_key = key
            rows.append(
                Case(
                    version=version,
                    key=key,
                    position=position,
                    input=candidate.input,
                    expected=candidate.expected,
                    split=Split.TRAIN,  # never a test case
                    tags=["synthetic"],
                    metadata={
                        "synthetic": {
                            "generation": generation.pk,
                            "candidate": candidate.position,
                            "edited": candidate.edited,
                        }
                    },
                )
            )
            position += 1
        Case.objects.bulk_create(rows)
        SyntheticCandidate.objects.bulk_update(accepted, ["case_key"])
        version.notes = [
            *version.notes,
            f"{CASES_NOTE}the {copied:,} cases of v{source.number}, unchanged, and {len(rows):,} synthetic "
            f"train case(s) from generation #{generation.pk}.",
        ]
        version.save(update_fields=["notes"])
        generation.promoted_version = version
        generation.save(update_fields=["promoted_version"])
        audit_record(
            actor=user,
            action="synthetic.promote",
            obj=generation,
            suite_id=suite.pk,
            after={
                "version": version.number,
                "from_version": source.number,
                "cases": copied,
                "train_cases_added": [c.case_key for c in accepted][:50],
                "added": len(rows),
                "cost": generation.cost,
            },
        )
    return version


def calls_planned(generation: SyntheticGeneration) -> int:
    """The calls a generation makes when every answer holds the pairs asked for."""
    return math.ceil(generation.requested / logic.per_call(generation.strategy.params))
