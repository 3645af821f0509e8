"""What ftvp adds per result: a 0 ms endpoint, so everything measured is ftvp's own work.

1. End to end: results per second of a 2,000-case run against a loopback endpoint that answers at
   once, through a real worker process (the same harness as bench/executor_efficiency.py).
2. Where the CPU goes: the same run's steps (start, generate each batch, score each batch, finalize,
   analyse) called in this process, one after the other, with the CPU time (all threads of the
   process: the HTTP calls run in a thread pool) split into rendering prompts, HTTP (the provider's
   calls: the openai SDK, httpx, JSON), DB writes (results, scores, batch marks), scoring (the
   assertions) and the rest (reads, bookkeeping, the run's finalize and analysis), in ms per result.
   A cProfile of the same steps is written next to it (`--profile FILE`, top functions by own time).

The database and broker are the embedded defaults (SQLite, filesystem broker) unless DATABASE_URL
and REDIS_URL are set. Messages the steps send are not consumed in part 2 (no worker runs then).

    .venv/bin/python bench/overhead_per_result.py [--cases 2000] [--profile docs/profiles/overhead.txt]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

from harness import backend_name, echo_suite_and_endpoint, run_through_workers, setup_django
from loopback import LoopbackServer

ROOT = Path(__file__).resolve().parents[1]
# The CPU a result may cost: benchmark 1's endpoint (C = 32 calls of 100 ms in flight) answers 320
# calls a second, and one worker process runs its Python on one core at a time (the GIL), so ftvp
# keeps up only below 1000 / 320 = 3.1 ms of CPU per result, everything included.
TARGET_MS = 3.1


class Phases:
    """CPU time of the thread that runs a wrapped function, by phase (the outermost wrapper counts)."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = defaultdict(float)
        self._local = threading.local()
        self._lock = threading.Lock()

    def wrap(self, phase: str, func):
        def timed(*args, **kwargs):
            if getattr(self._local, "inside", False):
                return func(*args, **kwargs)
            self._local.inside = True
            started = time.thread_time()
            try:
                return func(*args, **kwargs)
            finally:
                spent = time.thread_time() - started
                self._local.inside = False
                with self._lock:
                    self.cpu[phase] += spent

        return timed


def profile_steps(version, endpoint, profile_path: Path | None) -> tuple[dict[str, float], float, int]:
    """Run the pipeline's steps in this process; CPU seconds by phase, wall seconds, results."""
    from evaluations.models import Batch, Run, Strategy
    from evaluations.services import generation, run_analysis, runs
    from workers.celery import app

    app.send_task = lambda *args, **kwargs: None  # no worker consumes them in this part
    phases = Phases()
    generation._render = phases.wrap("render", generation._render)
    generation._save = phases.wrap("db writes", generation._save)
    runs.save_scores = phases.wrap("db writes", runs.save_scores)
    runs.scoring_apply = phases.wrap("scoring", runs.scoring_apply)
    from evaluations.providers import openai_compat

    cls = openai_compat.OpenAICompatProvider  # each call, in the thread that makes it
    cls._complete_safely = phases.wrap("http", cls._complete_safely)

    strategy = Strategy.objects.get(name="plain", version=1)
    run = runs.run_create(suite_version=version, arms=[(endpoint, strategy)], use_cache=False)
    profiler = cProfile.Profile() if profile_path else None
    wall = time.perf_counter()
    cpu = time.process_time()
    if profiler:
        profiler.enable()
    runs.run_start(run_id=run.pk)
    batch_ids = list(Batch.objects.filter(run=run).order_by("index").values_list("id", flat=True))
    for batch_id in batch_ids:
        generation.batch_generate(batch_id=batch_id)
    for batch_id in batch_ids:
        runs.batch_score(batch_id=batch_id)
    runs.run_finalize(run_id=run.pk)
    run_analysis.run_analyse(run_id=run.pk)
    if profiler:
        profiler.disable()
    total_cpu = time.process_time() - cpu
    wall = time.perf_counter() - wall
    results = Run.objects.get(pk=run.pk).arms.get().results.count()
    phases.cpu["other"] = total_cpu - sum(phases.cpu.values())
    if profiler and profile_path:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(40)
        stats.sort_stats("cumulative").print_stats("evaluations|django/db/models/query.py", 30)
        if os.environ.get("BENCH_CALLERS"):
            stats.print_callers(os.environ["BENCH_CALLERS"])
        profile_path.parent.mkdir(parents=True, exist_ok=True)
        text = out.getvalue().replace(str(ROOT) + "/", "").replace(sys.prefix + "/", "")
        profile_path.write_text(
            f"cProfile of bench/overhead_per_result.py part 2 ({results} results, main thread only)\n{text}"
        )
    return dict(phases.cpu), wall, results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--profile", type=Path, help="write a cProfile of part 2 here")
    parser.add_argument("--skip-worker", action="store_true", help="only part 2 (the in-process split)")
    args = parser.parse_args()
    tmp, production = setup_django("ftvp-overhead-bench-")
    backend = backend_name(production)
    server = LoopbackServer(delay=0.0)
    stamp = int(time.time())
    try:
        print(
            f"{args.cases} cases x 1 arm, 0 ms endpoint, C={args.concurrency}, {backend}, "
            f"{os.cpu_count()} cores"
        )
        if not args.skip_worker:
            version, endpoint = echo_suite_and_endpoint(
                f"{stamp}-e2e", args.cases, server.base_url, args.concurrency
            )
            wall, _ = run_through_workers(version, endpoint, workers=1, logs=tmp / "logs")
            print(f"end to end through 1 worker: {args.cases / wall:.0f} results/s ({wall:.2f} s)")
        version, endpoint = echo_suite_and_endpoint(
            f"{stamp}-cpu", args.cases, server.base_url, args.concurrency
        )
        cpu, wall, results = profile_steps(version, endpoint, args.profile)
    finally:
        server.stop()
    total_ms = sum(cpu.values()) * 1000 / results
    print(
        f"in process, one step at a time: {results} results in {wall:.2f} s ({results / wall:.0f} results/s)"
    )
    print("CPU ms per result: " + ", ".join(f"{k} {v * 1000 / results:.2f}" for k, v in cpu.items()))
    print(
        f"ftvp CPU per result: {total_ms:.2f} ms (target <= {TARGET_MS} ms): "
        f"{'met' if total_ms <= TARGET_MS else 'missed'}"
    )


if __name__ == "__main__":
    main()
