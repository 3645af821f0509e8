"""Shadow evaluation (docs/capture.md): a sampled share of the live calls the capture proxy recorded
for an endpoint is sent again, in the background, to a candidate endpoint (and strategy), and each
pair is compared: with the suite's assertions, the live answer as the expected one (agreement), or
with the pairwise judge (win / tie / loss of the candidate). The live response was answered and
recorded before any of this happens, so a shadow never delays nor changes it.

The workers' sweep sends `shadow_sweep(config_id)` for every enabled configuration with calls it has
not looked at; the task claims the next calls by moving the configuration's watermark with a
conditional update (two sweeps never take the same calls), samples them by a hash of (configuration,
call) against the share (the same call is in or out whatever the order), calls the candidate, and
stores one ShadowPair per call (unique: a redelivered task stores nothing twice). Calls a worker
claimed and then died on are not shadowed: a shadow is a sample."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import replace
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from evaluations import strategies
from evaluations.analysis.costs import token_cost
from evaluations.models import (
    Endpoint,
    Provider,
    ShadowCompare,
    ShadowConfig,
    ShadowPair,
    Strategy,
    Suite,
    TrafficCall,
    TrafficKind,
)
from evaluations.providers.base import GenerationParams
from evaluations.scoring import assertions
from evaluations.scoring import pairwise as pw
from evaluations.scoring.embeddings import CachedEmbedder
from evaluations.selectors.shadow import live_answer
from evaluations.services import queue
from evaluations.services.audit import audit_record
from evaluations.services.endpoints import endpoint_provider
from evaluations.services.judge import judge_endpoint
from evaluations.services.pairwise import PairJudge, input_text
from evaluations.services.result_scores import DBVectorStore, get_embedder
from evaluations.services.traffic import CaptureRedaction

log = logging.getLogger(__name__)

CLAIM = 200  # calls a task looks at, at most
# Calls are claimed once recorded this long ago: ids are given at insert, not at commit, so a call
# still being committed by another drain could otherwise fall behind the watermark unseen.
SETTLE_SECONDS = 30
DEFAULT_CHECKS = [{"type": "similar"}]
PAIRWISE = {"type": "pairwise", "against": "live"}


class ShadowError(ValueError):
    pass


def shadow_config_create(
    *,
    name: str,
    live_endpoint: Endpoint,
    candidate: Endpoint,
    share: float = 0.1,
    strategy: Strategy | None = None,
    compare: str = ShadowCompare.ASSERTIONS,
    suite: Suite | None = None,
    user=None,
) -> ShadowConfig:
    """Start shadowing `live_endpoint`'s captured calls with `candidate` (from the next call on)."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise ShadowError("name: 1 to 100 characters")
    if ShadowConfig.objects.filter(name=name).exists():
        raise ShadowError(f"name: a shadow named {name!r} exists; pick another name")
    if live_endpoint.pk == candidate.pk:
        raise ShadowError("candidate: it is the live endpoint; shadow it with another endpoint")
    try:
        share = float(share)
    except (TypeError, ValueError):
        raise ShadowError(f"share: {share!r} is not a number from 0 to 1") from None
    if not 0 < share <= 1:
        raise ShadowError(f"share: {share:g} is outside (0, 1]; e.g. 0.1 mirrors one call in ten")
    if compare not in ShadowCompare.values:
        raise ShadowError(f"compare: use one of {', '.join(ShadowCompare.values)}")
    if compare == ShadowCompare.PAIRWISE and judge_endpoint() is None:
        raise ShadowError("compare: pairwise needs a judge endpoint (FTVP_JUDGE_ENDPOINT)")
    if strategy is not None and strategy.kind not in ("plain", "zero-shot", "system", "cot", "structured"):
        raise ShadowError(
            f"strategy: {strategy} ({strategy.kind}) needs a suite's cases; a shadow re-sends live "
            "requests: use plain (as they are), system, cot or structured"
        )
    last = TrafficCall.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    with transaction.atomic():
        config = ShadowConfig.objects.create(
            name=name, live_endpoint=live_endpoint, candidate=candidate, strategy=strategy, share=share,
            compare=compare, suite=suite, watermark=last,
            created_by=user if getattr(user, "is_authenticated", False) else None,
        )  # fmt: skip
        audit_record(
            actor=user,
            action="shadow.create",
            obj=config,
            after={
                "live": live_endpoint.name,
                "candidate": candidate.name,
                "share": share,
                "compare": compare,
            },
        )
    return config


def shadow_config_set_enabled(*, config: ShadowConfig, enabled: bool, user=None) -> ShadowConfig:
    if config.enabled == enabled:
        return config
    with transaction.atomic():
        # From now on: the calls made while it was paused are not shadowed afterwards.
        last = TrafficCall.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        ShadowConfig.objects.filter(pk=config.pk).update(
            enabled=enabled, watermark=max(config.watermark, last)
        )
        audit_record(
            actor=user,
            action="shadow.enable" if enabled else "shadow.pause",
            obj=config,
            before={"enabled": config.enabled},
            after={"enabled": enabled},
        )
    config.refresh_from_db()
    return config


def shadows_dispatch() -> int:
    """The workers' sweep: a `shadow_sweep` for each enabled configuration with calls left to look at."""
    sent = 0
    for config_id, live, watermark in ShadowConfig.objects.filter(enabled=True).values_list(
        "pk", "live_endpoint_id", "watermark"
    ):
        if _settled().filter(endpoint_id=live, pk__gt=watermark).exists():
            queue.enqueue("shadow_sweep", config_id)
            sent += 1
    return sent


def sampled(config_id: int, call_id: str, share: float) -> bool:
    """Whether the call is in the configuration's sample: a hash of both against the share."""
    digest = hashlib.sha256(f"{config_id}:{call_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def _settled():
    return TrafficCall.objects.filter(recorded_at__lt=timezone.now() - timedelta(seconds=SETTLE_SECONDS))


def shadow_sweep(*, config_id: int, limit: int = CLAIM) -> int:
    """Claim the configuration's next calls, shadow the sampled ones; returns the pairs stored."""
    config = (
        ShadowConfig.objects.select_related("candidate", "strategy", "suite", "live_endpoint")
        .filter(pk=config_id, enabled=True)
        .first()
    )
    if config is None:
        return 0
    calls = list(
        _settled()
        .filter(endpoint_id=config.live_endpoint_id, pk__gt=config.watermark)
        .order_by("pk")
        .only("pk", "call_id", "kind", "status", "request", "response", "latency_ms", "cost",
              "prompt_tokens", "completion_tokens")[:limit]
    )  # fmt: skip
    if not calls:
        return 0
    claimed = ShadowConfig.objects.filter(pk=config.pk, watermark=config.watermark).update(
        watermark=calls[-1].pk
    )
    if not claimed:  # another sweep took these calls
        return 0
    todo = [
        c
        for c in calls
        if c.kind == TrafficKind.CHAT
        and c.status == 200
        and live_answer(c.response) is not None
        and isinstance((c.request or {}).get("messages"), list)
        and sampled(config.pk, c.call_id, config.share)
    ]
    if len(calls) == limit:  # more may be waiting: look again soon rather than at the next sweep
        queue.enqueue("shadow_sweep", config.pk)
    if not todo:
        return 0
    pairs = _shadow(config, todo)
    stored = 0
    for pair in pairs:
        try:
            with transaction.atomic():
                pair.save()
            stored += 1
        except IntegrityError:  # a redelivered task: the pair is there already
            continue
    return stored


def _prompt(config: ShadowConfig, call: TrafficCall) -> list[dict]:
    messages = [dict(m) for m in call.request["messages"] if isinstance(m, dict)]
    if config.strategy is None or config.strategy.kind == "plain":
        return messages
    ctx = strategies.RenderContext(params=config.strategy.params or {})
    return strategies.render(config.strategy.kind, messages, ctx)


def _params(config: ShadowConfig, call: TrafficCall) -> GenerationParams:
    """The candidate's own generation params, with the live request's temperature and length."""
    params = dict(config.candidate.params or {})
    for name in ("temperature", "max_tokens", "top_p", "seed"):
        if name in (call.request or {}) and call.request[name] is not None:
            params[name] = call.request[name]
    return GenerationParams.from_dict(params)


def _shadow(config: ShadowConfig, calls: list[TrafficCall]) -> list[ShadowPair]:
    candidate = config.candidate
    redact = CaptureRedaction.configured().text  # as the live calls were: patterns masked, secrets too
    by_params: dict[str, tuple[GenerationParams, list[TrafficCall]]] = {}
    for call in calls:
        params = _params(config, call)
        key = json.dumps(dataclasses.asdict(params), sort_keys=True, default=str)
        by_params.setdefault(key, (params, []))[1].append(call)
    pairs: list[ShadowPair] = []
    try:
        provider = endpoint_provider(candidate)
    except Exception as exc:  # e.g. its key variable is not set: every pair says why
        why = redact(f"the candidate cannot be called: {exc}")[:2000]
        return [ShadowPair(config=config, call=c, error=why) for c in calls]
    try:
        for params, group in by_params.values():
            try:
                completions = provider.complete_many([_prompt(config, c) for c in group], params)
            except Exception as exc:  # a prompt the strategy cannot render, a provider failure
                why = redact(f"{type(exc).__name__}: {exc}")[:2000]
                pairs.extend(ShadowPair(config=config, call=c, error=why) for c in group)
                continue
            for call, completion in zip(group, completions, strict=True):
                text = completion.text
                if config.strategy is not None and config.strategy.kind != "plain":
                    text = strategies.extract(config.strategy.kind, text, config.strategy.params)
                cost = completion.cost
                if cost is None and candidate.provider != Provider.LOCAL:
                    cost = token_cost(
                        completion.prompt_tokens, completion.completion_tokens,
                        float(candidate.price_in), float(candidate.price_out),
                    )  # fmt: skip
                pairs.append(
                    ShadowPair(
                        config=config, call=call, output=redact(text or ""),
                        error=redact(completion.error)[:2000], prompt_tokens=completion.prompt_tokens,
                        completion_tokens=completion.completion_tokens, latency_ms=completion.latency_ms,
                        cost=cost,
                    )
                )  # fmt: skip
    finally:
        close = getattr(provider, "close", None)
        if close is not None:
            close()
    try:  # the candidate's answers are paid for: kept even when the comparison fails
        if config.compare == ShadowCompare.PAIRWISE:
            _judge(pairs)
        else:
            _agree(config, pairs)
    except Exception as exc:
        log.exception("shadow %s: the comparison failed", config.name)
        for pair in pairs:
            if pair.agreement is None:
                pair.details = {"error": redact(f"not compared: {type(exc).__name__}: {exc}")[:500]}
    return pairs


def _checks(config: ShadowConfig) -> tuple[list[dict], float]:
    suite = config.suite
    if suite is None:
        return DEFAULT_CHECKS, 0.8
    checks = [a for a in (suite.default_assertions or []) if assertions.base_type(a) != "pairwise"]
    return (checks or DEFAULT_CHECKS), float(suite.pass_threshold)


def _agree(config: ShadowConfig, pairs: list[ShadowPair]) -> None:
    """Each candidate answer checked with the suite's assertions, the live answer as the expected one."""
    checks, threshold = _checks(config)
    plans = []
    for pair in pairs:
        if pair.error:
            continue
        ctx = assertions.Context(
            output=pair.output,
            expected=(live_answer(pair.call.response) or "",),
            similarity_threshold=threshold,
        )
        plans.append((pair, ctx))
    texts = sorted({t for _, ctx in plans for a in checks for t in assertions.texts_to_embed(a, ctx)})
    vectors = {}
    if texts:
        vectors = dict(zip(texts, CachedEmbedder(get_embedder(), DBVectorStore()).embed(texts), strict=True))
    for pair, ctx in plans:
        ctx = replace(ctx, vectors=vectors)
        verdicts = [assertions.evaluate(a, ctx) for a in checks]
        total = assertions.combine(checks, verdicts)
        if total.skipped:
            continue
        pair.agreement, pair.agreed = round(total.score, 6), bool(total.passed)
        pair.details = {"reason": total.reason[:500], "checks": [a.get("type") for a in checks]}


def _judge(pairs: list[ShadowPair]) -> None:
    """The pairwise judge on (candidate, live), the order drawn from a hash of the call: the
    candidate's win 1, tie 0.5, loss 0 (its `agreement`); agreed when it is no worse (a tie or a win)."""
    endpoint = judge_endpoint()
    todo = [p for p in pairs if not p.error]
    if endpoint is None or not todo:
        return
    requests = {}
    for pair in todo:
        seed = hashlib.sha256(f"shadow:{pair.config_id}:{pair.call.call_id}".encode()).hexdigest()[:16]
        first = pw.scored_shown_first(seed, "random")
        live = live_answer(pair.call.response) or ""
        question = input_text(pair.call.request.get("messages"))
        a, b = (pair.output, live) if first else (live, pair.output)
        requests[pair.pk or id(pair)] = (pair, (question, a, b, "", ()), first, seed)
    judge = PairJudge(endpoint)
    try:
        judge.prepare([r for _, r, _, _ in requests.values()])
    except Exception as exc:  # the judge cannot start: the pairs stay unjudged, with the reason
        for pair, _, _, _ in requests.values():
            pair.details = {"error": f"judge failed: {str(exc)[:120]}"}
        return
    for pair, request, first, seed in requests.values():
        try:
            choice = pw.parse_choice(judge(request))
        except Exception as exc:
            pair.details = {"error": f"judge failed: {str(exc)[:120]}", "seed": seed}
            continue
        outcome = pw.outcome(choice, first)
        score = {"win": 1.0, "tie": 0.5, "loss": 0.0}[outcome]
        pair.agreement, pair.agreed = score, outcome != "loss"
        pair.details = {"choice": choice, "outcome": outcome, "seed": seed,
                        "shown_first": "candidate" if first else "live"}  # fmt: skip
