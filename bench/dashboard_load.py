"""Dashboard load during a run: 20 users browse the dashboard while a 10,000-case run executes on one
worker. It records the p50 / p95 page times the users saw and the run's throughput, against the same
run without dashboard load.

1. A suite of 10,000 echo cases, an endpoint on the loopback server (100 ms per answer, concurrency
   16), a viewer, and 1 year x 5 arms of nightly trend points for the trends page.
2. The web app under gunicorn (2 workers of 4 threads, as in the Dockerfile) on a loopback port.
3. Run A: the run alone, on one worker: its throughput (results / s, from creating the run to its
   analysis).
4. Run B: the same run again (answer cache off) while 20 users, each logged in with a session of
   their own, loop over the run page, its live part (what htmx polls), a page of the results table
   and the trends page, with a think time of 1-3 s between pages (the live part is polled every 2 s).
   Their page times, and run B's throughput.

Targets: p95 page time under 300 ms; run B's throughput within 10% of run A's.

    DATABASE_URL=postgres://... REDIS_URL=redis://... FTVP_SECRET_KEY=... \
        .venv/bin/python bench/dashboard_load.py [--cases 10000] [--users 20]

Without DATABASE_URL and REDIS_URL it runs on a temporary SQLite database and the filesystem broker
(the figures are then not the production shape's).
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from harness import ROOT, backend_name, echo_suite_and_endpoint, run_through_workers, setup_django
from loopback import LoopbackServer

P95_TARGET_MS = 300.0
THROUGHPUT_TARGET = 0.10  # run B at most 10% slower than run A


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return ordered[rank]


class Gunicorn:
    """The web app under gunicorn on a free loopback port, with this process's environment."""

    def __init__(self, logs: Path, workers: int, threads: int) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.log = open(logs / "gunicorn.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "ftvp_site.wsgi:application", "--bind",
             f"127.0.0.1:{self.port}", "--workers", str(workers), "--threads", str(threads),
             "--timeout", "60"],
            cwd=ROOT, env=os.environ.copy(), stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                status, _ = self.get("/login/", cookie="")
                if status == 200:
                    return
            except OSError:
                pass
            if self.proc.poll() is not None:
                sys.exit(f"gunicorn exited early: see {logs / 'gunicorn.log'}")
            time.sleep(0.2)
        sys.exit(f"gunicorn did not answer within 60 s: see {logs / 'gunicorn.log'}")

    def get(self, path: str, *, cookie: str, conn: http.client.HTTPConnection | None = None):
        own = conn is None
        conn = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", path, headers={"Cookie": cookie, "Host": "127.0.0.1"})
            response = conn.getresponse()
            body = response.read()
            return response.status, body
        finally:
            if own:
                conn.close()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


class Users:
    """`count` threads, each a logged-in user browsing pages of the newest run until stopped."""

    def __init__(self, web: Gunicorn, cookies: list[str], pages, think: tuple[float, float]) -> None:
        self.web, self.cookies, self.pages, self.think = web, cookies, pages, think
        self.times: dict[str, list[float]] = {}
        self.failures: list[str] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._browse, args=(n,), daemon=True) for n in range(len(cookies))
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def join(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def _browse(self, n: int) -> None:
        rng = random.Random(n)
        conn = http.client.HTTPConnection("127.0.0.1", self.web.port, timeout=30)
        self.stop.wait(rng.uniform(0, self.think[1]))  # users do not all arrive at once
        while not self.stop.is_set():
            for name, path in self.pages(rng):
                if self.stop.is_set():
                    break
                started = time.perf_counter()
                try:
                    try:
                        status, _ = self.web.get(path, cookie=self.cookies[n], conn=conn)
                    except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                        # gunicorn closed the idle keep-alive connection: a browser reconnects
                        conn.close()
                        conn = http.client.HTTPConnection("127.0.0.1", self.web.port, timeout=30)
                        status, _ = self.web.get(path, cookie=self.cookies[n], conn=conn)
                except (OSError, http.client.HTTPException) as exc:
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.web.port, timeout=30)
                    status = f"{type(exc).__name__}: {exc}"
                elapsed = (time.perf_counter() - started) * 1000
                with self.lock:
                    if status == 200:
                        self.times.setdefault(name, []).append(elapsed)
                    else:
                        self.failures.append(f"{name} {path}: {status}")
                self.stop.wait(rng.uniform(*self.think))
        conn.close()


def session_cookies(count: int) -> list[str]:
    """`count` viewers, each with a session of their own (as if they had logged in)."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.test import Client

    viewer = Group.objects.get(name="viewer")
    cookies = []
    stamp = int(time.time())
    for n in range(count):
        user = get_user_model().objects.create_user(f"load-{stamp}-{n}")
        user.groups.add(viewer)
        client = Client()
        client.force_login(user)
        cookies.append(f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}")
    return cookies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds the endpoint takes per answer")
    parser.add_argument("--concurrency", type=int, default=16, help="the endpoint's max_concurrency")
    parser.add_argument("--think", default="1,3", help="seconds between a user's pages: min,max")
    parser.add_argument("--web-workers", type=int, default=2, help="as in the Dockerfile")
    parser.add_argument("--web-threads", type=int, default=4, help="as in the Dockerfile")
    args = parser.parse_args()
    think = tuple(float(x) for x in args.think.split(","))
    tmp, production = setup_django("ftvp-dashload-")
    from django.urls import reverse

    from evaluations.demo_data.trends import trends_seed_bench
    from evaluations.models import Result, Run

    logs = tmp / "logs"
    logs.mkdir()
    print(f"backend: {backend_name(production)}; scratch folder {tmp}", flush=True)
    trends = trends_seed_bench(suite_name=f"dashload-trends-{int(time.time())}", days=365, arms=5)["suite"]
    server = LoopbackServer(delay=args.latency)
    tag = f"dashload-{int(time.time())}"
    version, endpoint = echo_suite_and_endpoint(tag, args.cases, server.base_url, args.concurrency)
    cookies = session_cookies(args.users)
    web = Gunicorn(logs, args.web_workers, args.web_threads)
    try:
        wall_a, run_a = run_through_workers(version, endpoint, workers=1, logs=logs)
        rate_a = args.cases / wall_a
        print(f"run A (no dashboard load): {args.cases:,} results in {wall_a:.1f} s = {rate_a:.0f} results/s")

        newest = {"run": run_a.pk}
        trends_url = reverse("evaluations:suite-trends", args=[trends.pk]) + "?days=90"
        pages_of_results = max(1, args.cases // 50)

        def pages(rng: random.Random):
            run_id = newest["run"]
            return [
                ("run page", reverse("evaluations:run-detail", args=[run_id])),
                ("run live part", reverse("evaluations:run-live", args=[run_id])),
                ("results table", reverse("evaluations:run-results", args=[run_id])
                 + f"?page={rng.randint(1, pages_of_results)}"),
                ("run live part", reverse("evaluations:run-live", args=[run_id])),
                ("trends page", trends_url),
            ]  # fmt: skip

        # Warm-up on run A's pages: each gunicorn worker imports the analysis code on its first
        # requests, which a long-running installation has long done.
        warm = random.Random(0)
        for _ in range(4 * args.web_workers):
            for name, path in pages(warm):
                status, _ = web.get(path, cookie=cookies[0])
                if status != 200:
                    sys.exit(f"warm-up: {name} {path} answered {status}")
        users = Users(web, cookies, pages, think)

        def on_start():
            users.start()

        # Run B: the users follow the newest run (run B as soon as it exists).
        def follow():
            while not users.stop.is_set():
                latest = Run.objects.order_by("-pk").values_list("pk", flat=True).first()
                if latest and latest != newest["run"]:
                    newest["run"] = latest
                    return
                time.sleep(0.1)

        follower = threading.Thread(target=follow, daemon=True)
        follower.start()
        wall_b, run_b = run_through_workers(version, endpoint, workers=1, logs=logs, on_start=on_start)
        users.join()
        rate_b = args.cases / wall_b
    finally:
        web.stop()
        server.stop()
    assert Result.objects.filter(arm__run=run_b).count() == args.cases
    all_times = [t for values in users.times.values() for t in values]
    requests = len(all_times)
    print(
        f"run B (with {args.users} users): {args.cases:,} results in {wall_b:.1f} s = "
        f"{rate_b:.0f} results/s; "
        f"{requests:,} pages served ({requests / wall_b:.1f}/s), {len(users.failures)} failed"
    )
    for failure in users.failures[:5]:
        print(f"  failed: {failure}")
    for name, values in sorted(users.times.items()):
        print(
            f"  {name}: {len(values):,} requests, p50 {statistics.median(values):.0f} ms, "
            f"p95 {percentile(values, 0.95):.0f} ms, max {max(values):.0f} ms"
        )
    p50, p95 = statistics.median(all_times), percentile(all_times, 0.95)
    change = rate_b / rate_a - 1
    print(f"dashboard page time p50 under load ({args.users} users): {p50:.0f} ms (target n/a): n/a")
    met = p95 < P95_TARGET_MS and not users.failures
    print(
        f"dashboard page time p95 under load ({args.users} users): {p95:.0f} ms "
        f"(target < {P95_TARGET_MS:.0f} ms): " + ("met" if met else "missed")
    )
    print(
        f"run throughput with dashboard load vs without: {rate_b:.0f} / {rate_a:.0f} results/s = "
        f"{change:+.1%} (target >= -{THROUGHPUT_TARGET:.0%}): "
        + ("met" if change >= -THROUGHPUT_TARGET else "missed")
    )


if __name__ == "__main__":
    main()
