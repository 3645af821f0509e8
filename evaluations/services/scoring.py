"""Scoring results of a batch: embeddings batched and cached in the DB, so scoring never calls a model."""

from __future__ import annotations

import threading

import numpy as np
from django.conf import settings

from evaluations.models import EmbeddingCache, Result, TaskType
from evaluations.scoring import scorers
from evaluations.scoring.embeddings import CachedEmbedder, Embedder, HashingEmbedder, MiniLMEmbedder

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
            _embedders[name] = HashingEmbedder() if name == "hashing" else MiniLMEmbedder()
        return _embedders[name]


def score_results(results: list[Result], *, task_type: str, labels: list[str], pass_threshold: float) -> None:
    """Fill scores/score/passed on each result in memory (the caller saves them)."""
    to_embed: list[Result] = []
    for r in results:
        expected = r.case.expected_list
        if r.error:
            r.scores, r.score, r.passed = {"error": 1.0}, 0.0, False
        elif not expected:
            r.scores, r.score, r.passed = {}, None, None
        elif task_type == TaskType.CLASSIFICATION:
            predicted = scorers.extract_label(r.answer, labels)
            hit = 1.0 if predicted is not None and predicted in [e.strip() for e in expected] else 0.0
            r.scores = {"label": hit, "predicted": predicted}
            r.score, r.passed = hit, hit == 1.0
        elif task_type == TaskType.JSON:
            value = scorers.json_equal(r.answer, expected)
            r.scores, r.score, r.passed = {"json": value}, value, value == 1.0
        else:
            to_embed.append(r)
    if not to_embed:
        return
    embedder = CachedEmbedder(get_embedder(), DBVectorStore())
    texts: list[str] = []
    spans: list[tuple[int, int]] = []
    for r in to_embed:
        start = len(texts)
        texts.append(r.answer)
        texts.extend(r.case.expected_list)
        spans.append((start, len(texts)))
    vectors = embedder.embed(texts)
    for r, (start, end) in zip(to_embed, spans, strict=True):
        similarity = round(scorers.cosine_best(vectors[start], vectors[start + 1 : end]), 6)
        exact = scorers.exact(r.answer, r.case.expected_list)
        r.scores = {"similarity": similarity, "exact": exact}
        r.score = max(similarity, exact)
        r.passed = r.score >= pass_threshold
