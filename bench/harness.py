"""Shared set-up of the run benchmarks: Django on a scratch data folder, a suite of echo cases with
the `equals` assertion, an endpoint on the loopback server, and a run through real worker processes.

With DATABASE_URL and REDIS_URL set the benchmarks use PostgreSQL and Redis (point them at a scratch
database: suites and endpoints are created in it); otherwise a temporary SQLite database and the
filesystem broker."""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def setup_django(prefix: str, *, embedded: bool = False) -> tuple[Path, bool]:
    """Configure and migrate; (scratch folder, whether PostgreSQL + Redis are used). `embedded`:
    always a fresh SQLite database in the scratch folder, whatever the environment says."""
    production = not embedded and bool(os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL"))
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ.update({"FTVP_DATA_DIR": str(tmp), "DJANGO_SETTINGS_MODULE": "ftvp_site.settings"})
    if production:  # queues of its own: messages an earlier, interrupted benchmark left are not ours
        os.environ["FTVP_BROKER_PREFIX"] = f"ftvp-bench-{os.getpid()}-{int(time.time())}:"
    else:
        for name in ("DATABASE_URL", "REDIS_URL", "FTVP_SQLITE_PATH", "PYTEST_VERSION"):
            os.environ.pop(name, None)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return tmp, production


def backend_name(production: bool) -> str:
    return "PostgreSQL + Redis" if production else "SQLite + filesystem broker"


def echo_suite_and_endpoint(tag: str, cases: int, base_url: str, concurrency: int):
    """A suite of `cases` cases whose expected output is their input (the loopback server echoes it),
    scored with `equals` (the embedder is measured elsewhere), and an endpoint on `base_url`."""
    from evaluations.services.endpoints import endpoint_create
    from evaluations.services.suites import suite_import

    lines = "".join(
        json.dumps({"input": f"question {i} of {tag}", "expected": f"question {i} of {tag}"}) + "\n"
        for i in range(cases)
    )
    version = suite_import(name=f"bench-{tag}", fileobj=io.BytesIO(lines.encode()), filename="cases.jsonl")
    for obj in (version.suite, version):
        obj.default_assertions = [{"type": "equals"}]
        obj.save(update_fields=["default_assertions"])
    endpoint = endpoint_create(
        name=f"bench-{tag}",
        provider="openai",
        model="fake-model",
        base_url=base_url,
        max_concurrency=concurrency,
        timeout_seconds=30,
        params={"temperature": 0},
    )
    return version, endpoint


def run_through_workers(version, endpoint, *, workers: int, logs: Path, on_start=None):
    """Start `workers` worker processes, create a run of the suite on the endpoint (cache off), wait
    until it is finalized and analysed; (wall seconds from creating the run, the run)."""
    from evaluations.models import Endpoint, RunStatus, Strategy
    from evaluations.services.runs import run_create
    from workers.embedded import start_worker, stop_worker, wait_until_ready

    strategy = Strategy.objects.get(name="plain", version=1)
    tag = f"{endpoint.pk}-{int(time.time())}"
    procs = [
        start_worker(name=f"bench{n}-{tag}", log_path=logs / f"worker{n}-{tag}.log") for n in range(workers)
    ]
    try:
        for proc in procs:
            if not wait_until_ready(proc):
                sys.exit(f"a worker did not start: see {logs}")
        time.sleep(1.0)  # every worker consuming
        if on_start:
            on_start()
        started = time.monotonic()
        run = run_create(
            suite_version=version, arms=[(Endpoint.objects.get(pk=endpoint.pk), strategy)], use_cache=False
        )
        while True:
            run.refresh_from_db()
            if run.is_finished and (run.status != RunStatus.SUCCEEDED or run.analysed_at is not None):
                break
            time.sleep(0.02)
        wall = time.monotonic() - started
    finally:
        for proc in procs:
            stop_worker(proc)
    if run.status != RunStatus.SUCCEEDED:
        sys.exit(f"run #{run.pk} ended {run.status}: {run.error}")
    return wall, run
