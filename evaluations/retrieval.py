"""Retrieval for the `rag` strategies: chunking, a fused lexical + embedding ranking, and the
retrieval metrics (recall@k, MRR).

Pure (no Django): numbers and strings in, rankings out. The lexical signal is BM25 from the
maintained `bm25s` package; the semantic one is cosine similarity of the embedder's vectors; the two
rankings are fused by reciprocal rank fusion (Cormack, Clarke and Buettcher, SIGIR 2009), which
needs no score calibration between them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

# A chunk holds up to this many words, and repeats this many of the previous chunk's last words so a
# sentence cut at a boundary is whole in one of the two.
CHUNK_WORDS = 160
CHUNK_OVERLAP = 32
# ...and at most this many characters: text written without spaces (Chinese, Japanese, Thai, a long
# code or base64 run) is cut by characters, with a fifth of a window repeated.
CHUNK_CHARS = 1200
# Reciprocal rank fusion's constant (60 in the paper: it damps the weight of the very top ranks).
RRF_K = 60

_PARAGRAPHS = re.compile(r"\n\s*\n")
_TOKEN = re.compile(r"\w+", re.UNICODE)


def chunk_text(
    text: str, *, max_words: int = CHUNK_WORDS, overlap: int = CHUNK_OVERLAP, max_chars: int = CHUNK_CHARS
) -> list[str]:
    """Split a document into passages of at most `max_words` words and `max_chars` characters:
    paragraphs are kept whole and packed together while they fit; a paragraph longer than that is cut
    into windows that overlap by `overlap` words (and a passage still too long, by characters).
    Whitespace inside a passage is normalised; empty documents give no chunk."""
    if max_words < 1 or not 0 <= overlap < max_words or max_chars < 10:
        raise ValueError(
            "max_words must be at least 1, overlap between 0 and max_words - 1, max_chars at least 10"
        )
    return [
        piece for chunk in _word_chunks(text, max_words, overlap) for piece in _char_windows(chunk, max_chars)
    ]


def _char_windows(chunk: str, max_chars: int) -> list[str]:
    if len(chunk) <= max_chars:
        return [chunk]
    step = max_chars - max_chars // 5
    out = []
    for start in range(0, len(chunk), step):
        out.append(chunk[start : start + max_chars].strip())
        if start + max_chars >= len(chunk):
            break
    return [piece for piece in out if piece]


def _word_chunks(text: str, max_words: int, overlap: int) -> list[str]:
    chunks: list[str] = []
    current: list[str] = []
    for paragraph in _PARAGRAPHS.split(text):
        words = paragraph.split()
        if not words:
            continue
        if len(words) > max_words:
            if current:
                chunks.append(" ".join(current))
                current = []
            step = max_words - overlap
            for start in range(0, len(words), step):
                chunks.append(" ".join(words[start : start + max_words]))
                if start + max_words >= len(words):
                    break
            continue
        if current and len(current) + len(words) > max_words:
            chunks.append(" ".join(current))
            current = []
        current.extend(words)
    if current:
        chunks.append(" ".join(current))
    return chunks


# Scripts written without spaces between words: their runs are counted as overlapping character
# pairs (the usual lexical unit for CJK retrieval) rather than as one "word" per sentence.
_UNSPACED = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\u0e00-\u0e7f\uf900-\ufaff]+")


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens (letters, digits, underscore in any script), as BM25 counts them;
    runs of Chinese, Japanese, Korean or Thai characters as overlapping character pairs."""
    out: list[str] = []
    for word in _TOKEN.findall(text.lower()):
        if not _UNSPACED.search(word):
            out.append(word)
            continue
        position = 0
        for run in _UNSPACED.finditer(word):
            if run.start() > position:
                out.append(word[position : run.start()])
            chars = run.group()
            out.extend([chars] if len(chars) == 1 else [chars[i : i + 2] for i in range(len(chars) - 1)])
            position = run.end()
        if position < len(word):
            out.append(word[position:])
    return out


@dataclass(frozen=True)
class Hit:
    """One retrieved chunk: its place in the index's corpus and its fused score."""

    index: int
    score: float
    lexical_rank: int | None  # 1-based rank by BM25 (None: no query word in the chunk)
    semantic_rank: int


def _ranks(scores, *, positive_only: bool) -> dict[int, int]:
    """1-based ranks by score, highest first, ties to the earlier chunk."""
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    if positive_only:
        order = [i for i in order if float(scores[i]) > 0]
    return {i: rank for rank, i in enumerate(order, start=1)}


class Index:
    """A corpus of chunks searchable by a fused BM25 + embedding ranking.

    `vectors` are the chunks' embeddings (the suite's embedder, cached in the database, so a
    corpus is embedded once). Build once per suite version, then `search` per query."""

    def __init__(self, texts: Sequence[str], vectors) -> None:
        import bm25s
        import numpy as np

        self.texts = list(texts)
        matrix = np.asarray(vectors, dtype=np.float64)
        matrix = matrix.reshape(len(self.texts), -1) if self.texts else np.zeros((0, 1))
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        self._vectors = matrix / np.where(norms == 0, 1.0, norms)
        self._bm25 = None
        if self.texts:
            # A chunk with no word at all (punctuation only) still takes its place in the corpus.
            corpus = [tokens(t) or ["\u2400"] for t in self.texts]
            self._bm25 = bm25s.BM25()
            self._bm25.index(corpus, show_progress=False)

    def __len__(self) -> int:
        return len(self.texts)

    def search(self, query: str, query_vector, k: int) -> list[Hit]:
        """The k best chunks for the query by reciprocal rank fusion of the two rankings: a chunk's
        score is the sum of 1 / (RRF_K + rank) over the rankings it appears in (BM25 ranks only the
        chunks sharing a word with the query)."""
        import numpy as np

        if k <= 0 or not self.texts:
            return []
        q = np.asarray(query_vector, dtype=np.float64)
        norm = np.linalg.norm(q)
        semantic = self._vectors @ (q / norm if norm else q)
        words = tokens(query)
        lexical = self._bm25.get_scores(words) if words else np.zeros(len(self.texts))
        sem_rank = _ranks(semantic, positive_only=False)
        lex_rank = _ranks(lexical, positive_only=True)
        fused = {
            i: 1.0 / (RRF_K + sem_rank[i]) + (1.0 / (RRF_K + lex_rank[i]) if i in lex_rank else 0.0)
            for i in range(len(self.texts))
        }
        best = sorted(fused, key=lambda i: (-fused[i], i))[:k]
        return [Hit(i, fused[i], lex_rank.get(i), sem_rank[i]) for i in best]


# --- retrieval metrics -----------------------------------------------------------------------


def ranked_docs(doc_ids: Sequence[str]) -> list[str]:
    """The documents of a ranked list of chunks, each once, at its best chunk's place."""
    return list(dict.fromkeys(doc_ids))


def recall_at_k(retrieved: Sequence[str], gold: Sequence[str]) -> float:
    """Share of the gold documents among the retrieved ones (k = what was retrieved)."""
    wanted = set(gold)
    return len(wanted & set(retrieved)) / len(wanted) if wanted else 0.0


def reciprocal_rank(retrieved: Sequence[str], gold: Sequence[str]) -> float:
    """1 / the rank of the first gold document among the retrieved documents (0 when none is)."""
    wanted = set(gold)
    for rank, doc in enumerate(ranked_docs(retrieved), start=1):
        if doc in wanted:
            return 1.0 / rank
    return 0.0


def gold_docs(metadata: object) -> list[str]:
    """A case's gold documents (`metadata.gold_docs`: a name or a list of names), or []."""
    if not isinstance(metadata, dict):
        return []
    value = metadata.get("gold_docs")
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return []
    return [str(v).strip() for v in value if str(v).strip()]


def retrieval_metrics(pairs: Sequence[tuple[Sequence[str], Sequence[str]]], *, k: int | None) -> dict:
    """An arm's retrieval quality from (retrieved doc ids, gold doc ids) per case: recall@k and MRR
    over the cases that name gold documents, with how many did; None where no case does."""
    judged = [(got, gold) for got, gold in pairs if gold]
    recall = [recall_at_k(got, gold) for got, gold in judged]
    rr = [reciprocal_rank(got, gold) for got, gold in judged]
    return {
        "k": k,
        "cases": len(pairs),
        "cases_with_gold": len(judged),
        "recall_at_k": sum(recall) / len(recall) if recall else None,
        "mrr": sum(rr) / len(rr) if rr else None,
        "hit_rate": sum(1 for r in rr if r > 0) / len(rr) if rr else None,
    }
