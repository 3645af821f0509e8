"""The trends page over years of nightly runs: 2 years x 5 arms seeded by `seed_trends` (3,650 trend
points, no results) into a fresh SQLite database, then the server time of GET /suites/<pk>/trends/
?days=365 through Django's test client, logged in: the median of several requests after one warm-up,
and the number of queries one request makes.

Target: under 200 ms. Nothing outside a temporary folder is written.

    .venv/bin/python bench/trends_page.py [--days 730] [--arms 5] [--requests 15]
"""

from __future__ import annotations

import argparse
import statistics
import time

from harness import setup_django

TARGET_MS = 200.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=730, help="nights seeded")
    parser.add_argument("--arms", type=int, default=5)
    parser.add_argument("--range", type=int, default=365, choices=(30, 90, 365), help="days shown")
    parser.add_argument("--requests", type=int, default=15)
    args = parser.parse_args()
    setup_django("ftvp-trends-bench-", embedded=True)
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, setup_test_environment
    from django.urls import reverse

    from evaluations.demo_data.trends import trends_seed_bench
    from evaluations.models import Result, TrendPoint

    setup_test_environment()  # the test client's host; responses keep their templates
    started = time.monotonic()
    seeded = trends_seed_bench(suite_name="trends-bench", days=args.days, arms=args.arms)
    suite = seeded["suite"]
    print(
        f"seeded {seeded['runs']} nightly runs x {args.arms} arms = {TrendPoint.objects.count():,} trend "
        f"points ({Result.objects.count()} results) in {time.monotonic() - started:.1f} s"
    )
    user = get_user_model().objects.create_user("bench")  # no password: logged in by force_login
    user.groups.add(Group.objects.get(name="viewer"))  # the role that reads trends
    client = Client()
    client.force_login(user)
    url = reverse("evaluations:suite-trends", args=[suite.pk]) + f"?days={args.range}"
    response = client.get(url)  # warm-up: templates compiled, connection open
    assert response.status_code == 200, response.status_code
    assert b'id="trends-data"' in response.content, "the page rendered no chart data"
    times = []
    for _ in range(args.requests):
        with CaptureQueriesContext(connection) as queries:
            t0 = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200
    median = statistics.median(times)
    touched_results = any(Result._meta.db_table in q["sql"] for q in queries.captured_queries)
    years = args.days / 365
    print(
        f"trends page median ({years:g} years nightly, {args.arms} arms, {args.range} days): {median:.1f} ms "
        f"(target < {TARGET_MS:.0f} ms): " + ("met" if median < TARGET_MS else "missed")
    )
    print(
        f"queries per request: {len(queries.captured_queries)} (results table "
        f"{'READ' if touched_results else 'not read'}); page {len(response.content) / 1024:.0f} KiB; "
        f"min {min(times):.1f} ms, max {max(times):.1f} ms over {args.requests} requests"
    )


if __name__ == "__main__":
    main()
