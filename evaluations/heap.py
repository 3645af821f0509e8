"""Give the memory a large batch freed back to the system (glibc's malloc_trim; a no-op elsewhere).

A worker runs torch on several threads, and glibc gives each thread its own malloc arena. The pages a
batch frees (the KV cache of 32 answers, the embedder's activations) stay in the arena that served
them, for that thread's next allocations: a worker holding the local model and the embedder grew from
1.4 GB to 1.9 GB over its first few batches, without leaking anything. Trimming after each batch keeps
it near what the models themselves hold (see docs/benchmarks.md, "The local model").
"""

from __future__ import annotations

import ctypes
import functools


@functools.cache
def _malloc_trim():
    try:
        return ctypes.CDLL(None).malloc_trim  # the C library the process runs on
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to call
        return None


def release_freed_memory() -> None:
    """Return the free pages of every malloc arena to the system (a few milliseconds)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
