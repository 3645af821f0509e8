"""Scoring results of a batch: embeddings batched and cached in the DB, so scoring never calls a model."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
from django.conf import settings

from evaluations.models import EmbeddingCache, Result, TaskType
from evaluations.scoring import assertions, scorers
from evaluations.scoring.embeddings import (
    CachedEmbedder,
    Embedder,
    HashingEmbedder,
    MiniLMEmbedder,
    SentenceTransformerEmbedder,
)
from evaluations.scoring.pairwise import PENDING_REASON as PAIRWISE_PENDING

_embedders: dict[str, Embedder] = {}
_embedder_lock = threading.Lock()


class DBVectorStore:
    def get_many(self, model: str, hashes: list[str]) -> dict[str, np.ndarray]:
        rows = EmbeddingCache.objects.filter(model=model, text_hash__in=hashes).values_list(
            "text_hash", "vector"
        )
        return {h: np.frombuffer(bytes(v), dtype=np.float32) for h, v in rows}

    def set_many(self, model: str, vectors: dict[str, np.ndarray]) -> None:
        EmbeddingCache.objects.bulk_create(
            [
                EmbeddingCache(model=model, text_hash=h, vector=np.asarray(v, dtype=np.float32).tobytes())
                for h, v in vectors.items()
            ],
            ignore_conflicts=True,
        )


def get_embedder() -> Embedder:
    """The process-wide embedder named by FTVP_EMBEDDER (`minilm`, or `hashing` for fast tests)."""
    name = settings.FTVP_EMBEDDER
    with _embedder_lock:
        if name not in _embedders:
            if name == "hashing":
                _embedders[name] = HashingEmbedder()
            elif name == "minilm":
                _embedders[name] = MiniLMEmbedder()
            else:  # a folder holding a sentence-transformers model (checked by settings)
                _embedders[name] = SentenceTransformerEmbedder(name)
        return _embedders[name]


def _judge_for(plans):
    """The batch judge for the llm-rubric assertions in these results, if a judge is configured."""
    from evaluations.services.judge import BatchJudge, judge_endpoint

    requests = [
        (str(a.get("value", "")), ctx.output, ctx.expected)
        for r, checks, ctx in plans
        if not r.error
        for a in checks
        if assertions.base_type(a) == "llm-rubric"
    ]
    endpoint = judge_endpoint() if requests else None
    if endpoint is None:
        return None
    judge = BatchJudge(endpoint)
    judge.prepare(requests)
    return judge


def _flag_pairwise_pending(checks: list[dict], verdicts: list, scores: dict) -> None:
    """Mark the pairwise checks a batch cannot judge yet (the other arm's output may not exist): the
    run's pairwise step (services/pairwise.py) finds them by ``pairwise_pending`` and judges them."""
    for a, v, entry in zip(checks, verdicts, scores["assertions"], strict=True):
        if assertions.base_type(a) == "pairwise" and v.skipped and v.reason == PAIRWISE_PENDING:
            entry["pending"] = True
            scores["pairwise_pending"] = True


# What a case is checked with when neither the suite nor the case says: by task type.
TASK_DEFAULTS: dict[str, list[dict]] = {
    TaskType.GENERATION: [{"type": "similar"}],
    TaskType.CLASSIFICATION: [{"type": "label"}],
    TaskType.JSON: [{"type": "is-json", "weight": 0}, {"type": "json-equals"}],
}


def case_assertions(
    case_assertions: list[dict], *, has_expected: bool, suite_defaults: list[dict], task_type: str
):
    """The suite's defaults (or the task type's, for cases with an expected output), then the case's own."""
    base = list(suite_defaults) if suite_defaults else (TASK_DEFAULTS[task_type] if has_expected else [])
    return base + list(case_assertions or [])


def score_results(
    results: list[Result],
    *,
    task_type: str,
    labels: list[str],
    pass_threshold: float,
    default_assertions: list[dict] | None = None,
) -> None:
    """Fill scores/score/passed on each result in memory (the caller saves them).

    Every text that a similarity check needs is embedded in one batch through the cache, so expected
    outputs are embedded once per text and re-scoring re-embeds nothing it has seen. (The scorer
    versions are recorded once per scoring, by scoring_create.)
    """
    plans = []
    for r in results:
        expected = tuple(r.case.expected_list)
        checks = case_assertions(
            r.case.assertions, has_expected=bool(expected), suite_defaults=default_assertions or [],
            task_type=task_type,
        )  # fmt: skip
        ctx = assertions.Context(
            output=r.answer, expected=expected, similarity_threshold=pass_threshold, labels=tuple(labels),
            cost=r.cost, latency_ms=r.latency_ms,
        )  # fmt: skip
        plans.append((r, checks, ctx))
    texts = sorted(
        {
            t
            for r, checks, ctx in plans
            if not r.error
            for a in checks
            for t in assertions.texts_to_embed(a, ctx)
        }
    )
    vectors: dict[str, np.ndarray] = {}
    if texts:
        embedded = CachedEmbedder(get_embedder(), DBVectorStore()).embed(texts)
        vectors = dict(zip(texts, embedded, strict=True))
    judge = _judge_for(plans)
    for r, checks, ctx in plans:
        if r.error:
            r.scores, r.score, r.passed = {"error": r.error[:200]}, 0.0, False
            continue
        if not checks:
            r.scores, r.score, r.passed = {}, None, None
            continue
        ctx = dataclasses.replace(ctx, vectors=vectors, judge=judge)
        verdicts = [assertions.evaluate(a, ctx) for a in checks]
        total = assertions.combine(checks, verdicts)
        r.scores = {
            "assertions": [
                {"type": a["type"], "score": round(v.score, 6), "passed": v.passed, "reason": v.reason}
                | ({"skipped": True} if v.skipped else {})
                for a, v in zip(checks, verdicts, strict=True)
            ],
            "reason": total.reason,
        }
        _flag_pairwise_pending(checks, verdicts, r.scores)
        if task_type == TaskType.CLASSIFICATION:
            r.scores["predicted"] = scorers.extract_label(r.answer, labels)
        if total.skipped:  # nothing ftvp can run: neither a failure nor a pass
            r.score, r.passed = None, None
        else:
            r.score, r.passed = round(total.score, 6), total.passed
