import numpy as np
import pytest

from evaluations.scoring.embeddings import CachedEmbedder, HashingEmbedder, MemoryStore, normalise, text_hash


class CountingEmbedder:
    """Records every text it is asked to embed; vectors come from the hashing embedder."""

    name = "counting"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.inner = HashingEmbedder(dim=32)

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return self.inner.embed(texts)

    @property
    def embedded(self) -> list[str]:
        return [t for call in self.calls for t in call]


# --- HashingEmbedder --------------------------------------------------------------------------------


def test_hashing_embedder_returns_unit_float32_rows():
    vectors = HashingEmbedder(dim=64).embed(["the cat sat", "a dog", "Hello, world!"])

    assert vectors.shape == (3, 64)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)


def test_hashing_embedder_is_deterministic_across_instances():
    texts = ["the cat sat", "a dog"]
    assert np.array_equal(HashingEmbedder().embed(texts), HashingEmbedder().embed(texts))


def test_hashing_embedder_ignores_case_and_edge_punctuation():
    a, b, c = HashingEmbedder().embed(["The cat.", "the CAT", "a dog"])
    assert a @ b == pytest.approx(1.0)
    assert a @ c < 1.0


def test_normalise_leaves_zero_rows_at_zero():
    out = normalise(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert np.allclose(out, [[0.6, 0.8], [0.0, 0.0]])


# --- CachedEmbedder ---------------------------------------------------------------------------------


def test_cached_embedder_embeds_each_distinct_text_once_across_calls():
    inner = CountingEmbedder()
    cached = CachedEmbedder(inner, MemoryStore())

    cached.embed(["a", "b", "a"])
    cached.embed(["b", "c", "a", "c"])
    cached.embed(["a", "b", "c"])

    assert sorted(inner.embedded) == ["a", "b", "c"]
    assert inner.calls == [["a", "b"], ["c"]]
    assert cached.misses == 3


def test_cached_embedder_preserves_input_order_and_duplicates():
    inner = CountingEmbedder()
    cached = CachedEmbedder(inner, MemoryStore())
    cached.embed(["two", "one"])

    out = cached.embed(["one", "three", "two", "one"])

    expected = HashingEmbedder(dim=32).embed(["one", "three", "two", "one"])
    assert out.dtype == np.float32
    assert np.allclose(out, expected)


def test_cached_embedder_stores_vectors_under_the_inner_model_name_and_text_hash():
    store = MemoryStore()
    cached = CachedEmbedder(CountingEmbedder(), store)

    cached.embed(["hello"])

    assert cached.name == "counting"
    assert set(store.data) == {("counting", text_hash("hello"))}


def test_cached_embedder_shares_a_store_between_instances():
    store = MemoryStore()
    CachedEmbedder(CountingEmbedder(), store).embed(["x", "y"])
    second_inner = CountingEmbedder()

    CachedEmbedder(second_inner, store).embed(["y", "x", "z"])

    assert second_inner.calls == [["z"]]


def test_cached_embedder_does_not_mix_models_in_one_store():
    class OtherEmbedder(CountingEmbedder):
        name = "other"

    store = MemoryStore()
    CachedEmbedder(CountingEmbedder(), store).embed(["x"])
    other = OtherEmbedder()

    CachedEmbedder(other, store).embed(["x"])

    assert other.calls == [["x"]]


def test_cached_embedder_of_nothing_calls_nothing():
    inner = CountingEmbedder()
    assert CachedEmbedder(inner, MemoryStore()).embed([]).shape[0] == 0
    assert inner.calls == []


def test_memory_store_returns_only_known_hashes():
    store = MemoryStore()
    store.set_many("m", {"h1": np.ones(2)})
    assert list(store.get_many("m", ["h1", "h2"])) == ["h1"]
    assert store.get_many("other", ["h1"]) == {}
