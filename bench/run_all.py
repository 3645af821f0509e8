"""Run every benchmark of issue [bench] and write the table of their figures (`make bench`).

Each benchmark is a script in bench/ that prints its figure next to its target on lines of the
form "...: <figure> (target <target>): met|missed"; this runner collects those lines, the time each
script took and the machine (cores, memory, load), prints the table and writes it to
var/bench/results.md (the figures in docs/benchmarks.md are copied from such a table).

The benchmarks that need PostgreSQL and Redis (the executor, the overhead per result, the database
at scale) get a scratch database of their own, created if missing: BENCH_DATABASE_URL (default: the
`ftvp_bench` database of the PostgreSQL on 127.0.0.1) and BENCH_REDIS_URL (default: Redis database
15 on 127.0.0.1). The database-at-scale benchmark recreates its own (`<name>_scale`) each time.

    .venv/bin/python bench/run_all.py [--only executor,overhead]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
BUDGET_MINUTES = 15
FIGURE = re.compile(
    r"^(?P<what>.+?):\s+(?P<figure>.+?)\s+\(target (?P<target>[^)]*)\)\s*:\s*(?P<verdict>met|missed|n/a)",
    re.I,
)

# name, script, arguments, needs PostgreSQL + Redis
BENCHMARKS = [
    ("executor", "executor_efficiency.py", [], True),
    ("overhead", "overhead_per_result.py", ["--profile", "var/bench/overhead-profile.txt"], True),
    ("scoring", "scoring_throughput.py", [], False),
    ("local model", "local_model.py", [], False),
    ("database at scale", "db_scale.py", [], True),
    ("trends page", "trends_page.py", [], False),
    ("import 100k", "import_100k.py", [], False),
    ("dashboard load", "dashboard_load.py", [], True),
    ("capture proxy", "proxy_overhead.py", [], False),
]


def machine() -> str:
    cores = os.cpu_count()
    memory = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f", {int(line.split()[1]) / 1024 / 1024:.0f} GiB"
    except OSError:
        pass
    return f"{cores} cores{memory}"


def ensure_database(url: str, *, fresh: bool) -> None:
    """Create the scratch database `url` names (dropping it first when `fresh`)."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and fresh:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            exists = None
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated names: " + ", ".join(n for n, *_ in BENCHMARKS))
    args = parser.parse_args()
    wanted = {n.strip() for n in args.only.split(",")} if args.only else None
    database = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ftvp_bench")
    redis = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
    out_dir = ROOT / "var" / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, started_all = [], time.monotonic()
    python = sys.executable
    for name, script, extra, production in BENCHMARKS:
        if wanted and name not in wanted:
            continue
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        if production:
            url = database if name != "database at scale" else database + "_scale"
            try:
                ensure_database(url, fresh=name == "database at scale")
            except Exception as exc:  # no PostgreSQL here: say so, run the others
                rows.append((name, "skipped", f"needs PostgreSQL ({exc.__class__.__name__}: {exc})", "", 0.0))
                print(f"== {name}: skipped, PostgreSQL unavailable: {exc}", flush=True)
                continue
            env.update(DATABASE_URL=url, REDIS_URL=redis)
            env.setdefault("FTVP_SECRET_KEY", "bench-only-secret-key-" + "x" * 40)
        print(f"== {name}: {script} {' '.join(extra)}", flush=True)
        began = time.monotonic()
        proc = subprocess.Popen(
            [python, str(ROOT / "bench" / script), *extra],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        figures = []
        assert proc.stdout is not None
        log = (out_dir / f"{script.removesuffix('.py')}.log").open("w")
        for line in proc.stdout:
            log.write(line)
            if " INFO " in line:  # workers' and libraries' logging: kept in the log file only
                continue
            print("   " + line.rstrip(), flush=True)
            match = FIGURE.match(line.strip())
            if match:
                figures.append(match)
        code = proc.wait()
        log.close()
        seconds = time.monotonic() - began
        if code != 0:
            rows.append(
                (name, "error", f"exit {code}: see var/bench/{script.removesuffix('.py')}.log", "", seconds)
            )
        for m in figures:
            rows.append((name, m["what"], m["figure"], f"{m['target']}: {m['verdict']}", seconds))
    total = time.monotonic() - started_all
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        f"# Benchmarks, {date.today().isoformat()}",
        "",
        f"Machine: {machine()}, Python {sys.version.split()[0]}; load average {load:.1f} at the end.",
        f"Total time: {total / 60:.1f} min (budget {BUDGET_MINUTES} min).",
        "",
        "| benchmark | figure | value | target | script time |",
        "|---|---|---|---|---|",
    ]
    for name, what, figure, target, seconds in rows:
        lines.append(f"| {name} | {what} | {figure} | {target} | {seconds:.0f} s |")
    table = "\n".join(lines) + "\n"
    (out_dir / "results.md").write_text(table)
    print("\n" + table)
    print(f"written to {(out_dir / 'results.md').relative_to(ROOT)}")
    return 1 if any(r[1] in ("error",) for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
