"""release_freed_memory gives the pages a thread freed back to the system (glibc only)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from evaluations.heap import _malloc_trim, release_freed_memory

pytestmark = pytest.mark.skipif(
    _malloc_trim() is None or not Path("/proc/self/status").is_file(), reason="needs glibc and /proc"
)


def anon_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no RssAnon in /proc/self/status")


def test_the_pages_a_worker_thread_freed_are_returned_to_the_system():
    figures = {}

    def work():
        # 200 MB in blocks below malloc's mmap threshold, so they come from this thread's arena;
        # keeping every tenth alive leaves holes that freeing alone does not give back.
        blocks = [b"x" * 100_000 for _ in range(2000)]
        kept = blocks[::10]
        del blocks
        figures["freed"] = anon_mb()
        release_freed_memory()
        figures["trimmed"] = anon_mb()
        assert len(kept) == 200 and kept[-1][:1] == b"x"

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert figures["freed"] - figures["trimmed"] > 100, figures
