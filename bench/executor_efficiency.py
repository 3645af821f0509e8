"""Executor efficiency: how close a run comes to the endpoint's physical limit.

A loopback OpenAI-compatible server (bench/loopback.py, its own process) answers every request after
a fixed latency L (100 ms). N cases x 1 arm at per-endpoint concurrency C cannot finish faster than
N x L / C. The figure is the wall time from creating the run (what `evaluate` does) to the run
finalized (succeeded, scored, analysed) divided by that ideal. Target: at most 1.25 for 2,000 cases
at C = 32 on one worker.

Each configuration runs on a fresh suite with the answer cache off (every case is a real call), with
real worker processes (`celery -A workers worker`, the embedded worker's command line). With
DATABASE_URL and REDIS_URL set it uses PostgreSQL and Redis (the per-endpoint limit is then shared
by all workers, as in production); otherwise a temporary SQLite database and the filesystem broker
(where each worker process has its own limit, so only one worker is measured).

    .venv/bin/python bench/executor_efficiency.py [--cases 2000] [--latency 0.1]
        [--configs 32x1,4x1,64x1,128x1,32x2,32x4]

Scoring is part of the measured time: the suite's default assertion is `equals` on the echoed
answer, so what is measured is ftvp's own work (messages, rendering, HTTP, DB writes, scoring
bookkeeping), not the embedder (bench/scoring_throughput.py measures that).
"""

from __future__ import annotations

import argparse
import os
import time

from harness import backend_name, echo_suite_and_endpoint, run_through_workers, setup_django
from loopback import LoopbackServer

TARGET = 1.25


def parse_configs(text: str) -> list[tuple[int, int]]:
    out = []
    for part in text.split(","):
        concurrency, _, workers = part.strip().partition("x")
        out.append((int(concurrency), int(workers or 1)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds the server waits per request")
    parser.add_argument(
        "--configs", default="32x1,4x1,64x1,128x1,32x2,32x4", help="concurrency x worker processes, ..."
    )
    args = parser.parse_args()
    tmp, production = setup_django("ftvp-exec-bench-")
    server = LoopbackServer(delay=args.latency)
    print(
        f"{args.cases} cases x 1 arm, {args.latency * 1000:.0f} ms per call, {backend_name(production)}, "
        f"{os.cpu_count()} cores"
    )
    header = f"{'C':>4} {'workers':>7} {'ideal s':>8} {'wall s':>8} {'ratio':>6}"
    print(f"{header}  target <= {TARGET} at C=32, 1 worker")
    rows = []
    stamp = int(time.time())
    try:
        for concurrency, workers in parse_configs(args.configs):
            if workers > 1 and not production:
                print(
                    f"{concurrency:>4} {workers:>7}  skipped: several workers need DATABASE_URL and REDIS_URL"
                )
                continue
            tag = f"{stamp}-{len(rows)}-c{concurrency}-w{workers}"
            version, endpoint = echo_suite_and_endpoint(tag, args.cases, server.base_url, concurrency)
            wall, run = run_through_workers(
                version, endpoint, workers=workers, logs=tmp / "logs", on_start=server.reset
            )
            peak = server.stats()["max_in_flight"]
            passed = run.arms.get().results.filter(passed=True).count()
            ideal = args.cases * args.latency / concurrency
            ratio = wall / ideal
            rows.append((concurrency, workers, ideal, wall, ratio, peak, passed))
            print(
                f"{concurrency:>4} {workers:>7} {ideal:>8.2f} {wall:>8.2f} {ratio:>6.2f}"
                f"  (peak {peak} calls in flight; {passed}/{args.cases} passed)"
            )
    finally:
        server.stop()
    for concurrency, workers, ideal, wall, ratio, peak, _ in rows:
        headline = concurrency == 32 and workers == 1
        verdict = ("met" if ratio <= TARGET else "missed") if headline else "n/a"
        print(
            f"wall / ideal at C={concurrency}, {workers} worker{'s' if workers > 1 else ''}: {ratio:.2f} "
            f"({wall:.1f} s / {ideal:.2f} s, peak {peak} in flight) (target <= {TARGET} at C=32, 1 worker): "
            f"{verdict}"
        )


if __name__ == "__main__":
    main()
