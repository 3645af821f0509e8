"""Executor efficiency: how close a run comes to the endpoint's physical limit.

A loopback OpenAI-compatible server answers every request after a fixed latency L (100 ms). N cases
x 1 arm at per-endpoint concurrency C cannot finish faster than N x L / C. The figure is the wall
time from creating the run (what `evaluate` does) to the run finalized (succeeded, scored, analysed)
divided by that ideal. Target: at most 1.25 for 2,000 cases at C = 32 on one worker.

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
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

TARGET = 1.25
ROOT = Path(__file__).resolve().parents[1]


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
    production = bool(os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL"))
    tmp = tempfile.mkdtemp(prefix="ftvp-exec-bench-")
    os.environ.update({"FTVP_DATA_DIR": tmp, "DJANGO_SETTINGS_MODULE": "ftvp_site.settings"})
    if not production:
        for name in ("DATABASE_URL", "REDIS_URL", "FTVP_SQLITE_PATH"):
            os.environ.pop(name, None)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    from evaluations.models import Endpoint, Run, RunStatus, Strategy
    from evaluations.services.endpoints import endpoint_create
    from evaluations.services.runs import run_create
    from evaluations.services.suites import suite_import
    from tests.fakeopenai import FakeOpenAI
    from workers.embedded import start_worker, stop_worker, wait_until_ready

    server = FakeOpenAI(delay=args.latency)
    backend = "PostgreSQL + Redis" if production else "SQLite + filesystem broker"
    latency_ms = args.latency * 1000
    print(f"{args.cases} cases x 1 arm, {latency_ms:.0f} ms per call, {backend}, {os.cpu_count()} cores")
    header = f"{'C':>4} {'workers':>7} {'ideal s':>8} {'wall s':>8} {'ratio':>6}"
    print(f"{header}  target <= {TARGET} at C=32, 1 worker")
    rows = []
    stamp = int(time.time())
    for concurrency, workers in parse_configs(args.configs):
        if workers > 1 and not production:
            print(f"{concurrency:>4} {workers:>7}  skipped: several workers need DATABASE_URL and REDIS_URL")
            continue
        tag = f"{stamp}-c{concurrency}-w{workers}"
        lines = "".join(
            json.dumps({"input": f"question {i} of {tag}", "expected": f"question {i} of {tag}"}) + "\n"
            for i in range(args.cases)
        )
        version = suite_import(
            name=f"bench-{tag}", fileobj=io.BytesIO(lines.encode()), filename="cases.jsonl"
        )
        version.suite.default_assertions = [{"type": "equals"}]
        version.suite.save(update_fields=["default_assertions"])
        version.default_assertions = [{"type": "equals"}]
        version.save(update_fields=["default_assertions"])
        endpoint = endpoint_create(
            name=f"bench-{tag}",
            provider="openai",
            model="fake-model",
            base_url=server.base_url,
            max_concurrency=concurrency,
            timeout_seconds=30,
            params={"temperature": 0},
        )
        strategy = Strategy.objects.get(name="plain", version=1)
        procs = [
            start_worker(name=f"bench{n}-{tag}", log_path=Path(tmp) / "logs" / f"worker{n}-{tag}.log")
            for n in range(workers)
        ]
        try:
            for proc in procs:
                if not wait_until_ready(proc):
                    sys.exit(f"a worker did not start: see {tmp}/logs")
            time.sleep(1.0)  # every worker consuming
            server.max_in_flight = 0
            started = time.monotonic()
            run = run_create(
                suite_version=version,
                arms=[(Endpoint.objects.get(pk=endpoint.pk), strategy)],
                use_cache=False,
            )
            while True:
                run.refresh_from_db()
                if run.is_finished and (run.status != RunStatus.SUCCEEDED or run.analysed_at is not None):
                    break
                time.sleep(0.05)
            wall = time.monotonic() - started
        finally:
            for proc in procs:
                stop_worker(proc)
        if run.status != RunStatus.SUCCEEDED:
            sys.exit(f"run #{run.pk} ended {run.status}: {run.error}")
        done = Run.objects.get(pk=run.pk).arms.get().results.filter(passed=True).count()
        ideal = args.cases * args.latency / concurrency
        ratio = wall / ideal
        rows.append((concurrency, workers, ideal, wall, ratio, server.max_in_flight, done))
        print(
            f"{concurrency:>4} {workers:>7} {ideal:>8.2f} {wall:>8.2f} {ratio:>6.2f}"
            f"  (peak {server.max_in_flight} calls in flight; {done}/{args.cases} passed)"
        )
    server.stop()
    headline = [r for r in rows if r[0] == 32 and r[1] == 1]
    if headline:
        ratio = headline[0][4]
        print(f"executor efficiency at C=32, 1 worker: {ratio:.2f} (target <= {TARGET}): "
              f"{'met' if ratio <= TARGET else 'missed'}")  # fmt: skip


if __name__ == "__main__":
    main()
