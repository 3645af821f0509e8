"""The database at scale: the server time and the number of SQL queries of the run page, the results
table, the compare view and the trends page with 1,000,000 results in PostgreSQL.

Seeds a scratch PostgreSQL database (DATABASE_URL) with one suite of 2,000 test cases and 500
finished, scored and analysed nightly runs of one arm each (500 x 2,000 = 1,000,000 results: a
prompt of two chat messages, an output of 100-300 characters, a `similar` score, pass/fail, tokens,
latency, cost, about 0.5% errors), their batches, scorings, arm summaries and trend points, written
with set-based SQL (INSERT ... SELECT over generate_series, no ORM per row), plus two years of nightly
trend aggregates (730 nights x 5 arms, `seed_trends`' demo_data/trends.py), then VACUUM ANALYZE.
The runs that are timed get their summaries from the real `arm_summaries`.

Then, through Django's test client logged in as an admin, each page is requested twice to warm up
and `--requests` times more: p50 and p95 of the server time, and the queries of one request
(CaptureQueriesContext, taken apart from the timed requests). Target: p95 under 200 ms per page.

The database must be a scratch one: the script refuses a database holding any suite unless
`--reuse` is given (then an earlier seed of this script is reused as it is, or seeded next to the
other suites). Nothing outside the database and a temporary folder is written.

    DATABASE_URL=postgres://USER@HOST:5432/SCRATCH_DB .venv/bin/python bench/db_scale.py \
        [--runs 500] [--cases 2000] [--requests 20] [--reuse]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

TARGET_MS = 200.0
ROOT = Path(__file__).resolve().parents[1]
SUITE = "db-scale"
TREND_SUITE = "db-scale-trends"
THRESHOLD = 0.8
ERROR_TEXT = "upstream timeout after 60 s (3 attempts)"
SYSTEM = "You are a support assistant. Answer the customer's question in one or two sentences."
VOCABULARY = (
    "account billing invoice refund order shipping delivery password login update plan upgrade "
    "cancel subscription card payment address email phone support ticket issue error device app "
    "browser cache settings profile export report usage limit quota trial discount coupon receipt "
    "tax region language backup restore sync share folder file upload download permission team "
    "member admin role token key webhook integration calendar reminder notification schedule"
)
WORDS = tuple(VOCABULARY.split(" "))
N_TEXTS = 4000


def _text(rng: random.Random, low: int, high: int) -> str:
    target = rng.randint(low, high)
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < target:
        words.append(rng.choice(WORDS))
    text = " ".join(words)[:target].rstrip()
    return text[0].upper() + text[1:] + "."


def _refuse(message: str) -> int:
    print(f"db_scale: {message}", file=sys.stderr)
    return 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--trend-days", type=int, default=730)
    parser.add_argument("--trend-arms", type=int, default=5)
    parser.add_argument("--requests", type=int, default=20, help="timed requests per page")
    parser.add_argument(
        "--reuse", action="store_true", help="accept a database that holds suites (an earlier seed)"
    )
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "").strip()
    if not url.startswith(("postgres://", "postgresql://")):
        return _refuse(
            "needs DATABASE_URL pointing at a scratch PostgreSQL database, e.g. "
            "DATABASE_URL=postgres://postgres@127.0.0.1:5432/ftvp_scale (create it first: "
            "createdb ftvp_scale). It seeds 1,000,000 results there."
        )
    os.environ["FTVP_DATA_DIR"] = tempfile.mkdtemp(prefix="ftvp-db-scale-")
    # A key for this process only: nothing it signs outlives it.
    os.environ.setdefault("FTVP_SECRET_KEY", secrets.token_urlsafe(48))
    os.environ.pop("REDIS_URL", None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "ftvp_site.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from evaluations.models import Suite

    if connection.vendor != "postgresql":
        return _refuse("DATABASE_URL must be a PostgreSQL database")
    # Checked before migrating: a database that is not a scratch one is left as it is.
    if Suite._meta.db_table in connection.introspection.table_names():
        existing = list(Suite.objects.values_list("name", flat=True)[:5])
        if existing and not args.reuse:
            return _refuse(
                f"the database {connection.settings_dict['NAME']!r} already holds suites "
                f"({', '.join(existing)}...): give a scratch database, or --reuse to reuse an earlier "
                "seed of this script"
            )
    call_command("migrate", verbosity=0)
    started = time.monotonic()
    suite = Suite.objects.filter(name=SUITE).first()
    if suite is None:
        suite = seed(runs=args.runs, cases=args.cases)
        print(f"seeded {args.runs} runs x {args.cases:,} cases in {time.monotonic() - started:.1f} s")
    else:
        problem = _incomplete(suite)
        if problem:
            return _refuse(f"the suite {SUITE!r} is an incomplete seed ({problem}): use a fresh database")
        print(f"reusing the seeded suite {SUITE!r}")
    t0 = time.monotonic()
    from evaluations.demo_data.trends import trends_seed_bench

    trends = trends_seed_bench(suite_name=TREND_SUITE, days=args.trend_days, arms=args.trend_arms)["suite"]
    print(
        f"trend aggregates: {args.trend_days} nights x {args.trend_arms} arms ({time.monotonic() - t0:.1f} s)"
    )
    t0 = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE)")
    print(f"VACUUM ANALYZE: {time.monotonic() - t0:.1f} s; whole setup {time.monotonic() - started:.1f} s")
    return measure(suite, trends, requests=args.requests)


def _incomplete(suite) -> str:
    from django.db.models import Sum

    from evaluations.models import Result, Run

    runs = Run.objects.filter(suite_version__suite=suite)
    expected = runs.aggregate(n=Sum("expected_results"))["n"] or 0
    found = Result.objects.filter(arm__run__in=runs).count()
    if not expected or found != expected or runs.filter(analysed_at__isnull=True).exists():
        return f"{found:,} of {expected:,} results"
    return ""


def seed(*, runs: int, cases: int):
    """One suite, `cases` test cases, `runs` finished runs of one arm with a result per case."""
    from django.conf import settings
    from django.db import connection, transaction
    from django.utils import timezone

    from evaluations.models import (
        Arm,
        Batch,
        Case,
        Endpoint,
        Finding,
        FindingKind,
        Result,
        Run,
        RunStatus,
        Scoring,
        Strategy,
        Suite,
        SuiteVersion,
        TrendPoint,
        Trigger,
    )
    from evaluations.scoring import assertions
    from evaluations.selectors.runs import arm_summaries
    from evaluations.services.result_scores import TASK_DEFAULTS, get_embedder
    from evaluations.services.trends import endpoint_fingerprint, series_name

    rng = random.Random(20261121)
    t0 = time.monotonic()
    now = timezone.now().replace(hour=2, minute=0, second=0, microsecond=0)
    with transaction.atomic():
        suite = Suite.objects.create(
            name=SUITE,
            description=f"bench/db_scale.py: {runs} nightly runs of {cases:,} cases, one arm each.",
            pass_threshold=THRESHOLD,
            quality_target=0.8,
        )
        version = SuiteVersion.objects.create(
            suite=suite, number=1, source_name="db_scale.csv", source_format="csv"
        )
        topics = ("billing", "account", "shipping", "technical", "privacy")
        Case.objects.bulk_create(
            [
                Case(
                    version=version,
                    key=f"case-{i:05d}",
                    position=i,
                    input=f"Customer #{i}: " + _text(rng, 60, 220),
                    expected=_text(rng, 80, 200),
                    tags=[topics[i % len(topics)]],
                    metadata={"source": "tickets", "difficulty": round(rng.random(), 3)},
                )
                for i in range(cases)
            ],
            batch_size=1000,
        )
        endpoint, _ = Endpoint.objects.get_or_create(
            name="db-scale-model",
            defaults={
                "provider": "openai",
                "model": "bench-model",
                "base_url": "http://127.0.0.1:9/v1",  # never called: bench data only
                "params": {"temperature": 0},
                "price_in": 0.15,
                "price_out": 0.60,
            },
        )
        strategy = Strategy.objects.get(name="zero-shot", version=1)
        run_rows = []
        for i in range(runs):
            night = now - timedelta(days=runs - i)
            run_rows.append(
                Run(
                    suite_version=version,
                    status=RunStatus.SUCCEEDED,
                    trigger=Trigger.SCHEDULE,
                    use_cache=False,
                    expected_results=cases,
                    started_at=night,
                    finished_at=night + timedelta(minutes=20),
                    analysed_at=night + timedelta(minutes=21),
                )
            )
        run_rows = Run.objects.bulk_create(run_rows, batch_size=500)
        for run in run_rows:  # auto_now_add overrode the night on insert
            run.created_at = run.started_at
        Run.objects.bulk_update(run_rows, ["created_at"], batch_size=500)
        arms = Arm.objects.bulk_create(
            [Arm(run=run, endpoint=endpoint, strategy=strategy, position=0) for run in run_rows],
            batch_size=500,
        )
        used = list(TASK_DEFAULTS[version.task_type])
        scorings = Scoring.objects.bulk_create(
            [
                Scoring(
                    run=run,
                    number=1,
                    embedder=get_embedder().name,
                    scorer_versions=assertions.scorer_versions(used),
                    finished_at=run.finished_at,
                )
                for run in run_rows
            ],
            batch_size=500,
        )
    print(f"  suite, {cases:,} cases, {runs} runs, arms, scorings: {time.monotonic() - t0:.1f} s")

    size = settings.FTVP_BATCH_SIZE
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO off")
        cursor.execute(
            "CREATE TEMP TABLE bench_arm (arm_id bigint, run_id bigint, scoring_id bigint, idx int, "
            "shift float8, started timestamptz, finished timestamptz)"
        )
        # Each night's quality shift (within +-0.025): the first run, the baseline, is among the best.
        cursor.executemany(
            "INSERT INTO bench_arm VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [
                (arm.pk, run.pk, sc.pk, i, 0.025 * (3 - (i * 37) % 7) / 3, run.started_at, run.finished_at)
                for i, (run, arm, sc) in enumerate(zip(run_rows, arms, scorings, strict=True))
            ],
        )
        cursor.execute("CREATE TEMP TABLE bench_text (i int PRIMARY KEY, body text)")
        cursor.executemany(
            "INSERT INTO bench_text VALUES (%s, %s)", [(i, _text(rng, 100, 300)) for i in range(N_TEXTS)]
        )
        cursor.execute(
            "CREATE TEMP TABLE bench_case AS SELECT id AS case_id, position AS pos, input #>> '{}' AS input, "
            "(metadata ->> 'difficulty')::float8 AS difficulty FROM evaluations_case WHERE version_id = %s",
            [version.pk],
        )
        cursor.execute("ANALYZE bench_arm; ANALYZE bench_text; ANALYZE bench_case")
        t0 = time.monotonic()
        # Batches as run_create makes them: FTVP_BATCH_SIZE case ids each, generated and scored.
        cursor.execute(
            f"""
            INSERT INTO {Batch._meta.db_table}
                (run_id, arm_id, index, case_ids, attempts, heartbeat_at, generated_at, scored_at)
            SELECT a.run_id, a.arm_id, b.index, b.case_ids, 1, NULL, a.finished, a.finished
            FROM bench_arm a CROSS JOIN (
                SELECT pos / %(size)s AS index, jsonb_agg(case_id ORDER BY pos) AS case_ids
                FROM bench_case GROUP BY pos / %(size)s
            ) b
            """,  # noqa: S608  (model table names only; values are parameters)
            {"size": size},
        )
        n_batches = (cases + size - 1) // size
        cursor.execute(
            f"UPDATE {Run._meta.db_table} SET batches_total = %s, batches_scored = %s "  # noqa: S608
            "WHERE id IN (SELECT run_id FROM bench_arm)",
            [n_batches, n_batches],
        )
        print(f"  {runs * n_batches:,} batches: {time.monotonic() - t0:.1f} s")
        t0 = time.monotonic()
        chunk = 50
        for start in range(0, runs, chunk):
            cursor.execute(
                RESULTS_SQL.format(table=Result._meta.db_table, n_texts=N_TEXTS),
                {
                    "low": start,
                    "high": start + chunk,
                    "system": SYSTEM,
                    "error": ERROR_TEXT,
                    "threshold": THRESHOLD,
                    "price_in": float(endpoint.price_in),
                    "price_out": float(endpoint.price_out),
                },
            )
            done = min(start + chunk, runs)
            print(f"  results of runs {done}/{runs}: {time.monotonic() - t0:.1f} s", flush=True)

        # What finalize stores: each arm's summary (from SQL aggregates here; the real summariser for
        # the runs the pages are timed on, below), the scoring's copy and the run's trend point.
        t0 = time.monotonic()
        cursor.execute(SUMMARY_SQL.format(table=Result._meta.db_table))
        rows = cursor.fetchall()
    summaries = {row[0]: _summary(row[1:-1], suite.monthly_volume) for row in rows}
    chars = {row[0]: row[-1] for row in rows}  # trends_record's output_chars_mean
    timed = [run_rows[0], run_rows[-2], run_rows[-1]]  # the baseline, and the two runs compared
    for run in timed:
        summaries.update(arm_summaries(run))
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.executemany(
                f"UPDATE {Arm._meta.db_table} SET summary = %s::jsonb WHERE id = %s",  # noqa: S608
                [(json.dumps(s), arm_id) for arm_id, s in summaries.items()],
            )
            cursor.executemany(
                f"UPDATE {Scoring._meta.db_table} SET summaries = %s::jsonb WHERE id = %s",  # noqa: S608
                [
                    (json.dumps({str(arm.pk): summaries[arm.pk]}), sc.pk)
                    for arm, sc in zip(arms, scorings, strict=True)
                ],
            )
        fingerprint, series = endpoint_fingerprint(endpoint), series_name(endpoint, strategy)
        TrendPoint.objects.bulk_create(
            [
                TrendPoint(
                    arm=arm,
                    suite=suite,
                    run=run,
                    at=run.finished_at,
                    series=series,
                    endpoint=endpoint,
                    strategy=strategy,
                    suite_version_number=version.number,
                    strategy_version=strategy.version,
                    endpoint_fingerprint=fingerprint,
                    mean_score=summaries[arm.pk]["mean_score"],
                    score_ci_low=(summaries[arm.pk]["score_ci"] or [None, None])[0],
                    score_ci_high=(summaries[arm.pk]["score_ci"] or [None, None])[1],
                    pass_rate=summaries[arm.pk]["pass_rate"],
                    cost_per_request=summaries[arm.pk]["cost_per_request"],
                    latency_p95_ms=summaries[arm.pk]["latency_p95_ms"],
                    completion_tokens_mean=summaries[arm.pk]["completion_tokens_mean"],
                    output_chars_mean=chars.get(arm.pk),
                )
                for run, arm in zip(run_rows, arms, strict=True)
            ],
            batch_size=500,
        )
        # The first run is the baseline; runs whose mean dropped below it got a regression finding.
        base = summaries[arms[0].pk]["mean_score"]
        Finding.objects.bulk_create(
            [
                Finding(
                    suite=suite,
                    run=run,
                    arm=arm,
                    baseline_run=run_rows[0],
                    kind=FindingKind.REGRESSION,
                    title=f"{arm.endpoint.name} · {strategy}: mean score "
                    f"{summaries[arm.pk]['mean_score']:.3f} vs {base:.3f} in the baseline",
                    details={"baseline": base, "mean": summaries[arm.pk]["mean_score"]},
                )
                for run, arm in zip(run_rows[1:], arms[1:], strict=True)
                if summaries[arm.pk]["mean_score"] < base - 0.02
            ],
            batch_size=500,
        )
        Suite.objects.filter(pk=suite.pk).update(baseline_run=run_rows[0])
    print(f"  summaries, scorings, trend points, findings: {time.monotonic() - t0:.1f} s")
    suite.refresh_from_db()
    return suite


# One result per (arm, case). Uniform numbers come from hashes of the ids, so a seed is
# reproducible; outputs are drawn from a pool of texts, mostly the same per case across runs (as at
# temperature 0), now and then another.
RESULTS_SQL = """
INSERT INTO {table} (arm_id, case_id, sample, prompt, output, answer, prompt_tokens, completion_tokens,
    latency_ms, compute_seconds, cost, error, cached, scores, scoring_id, score, passed, created_at,
    scored_at)
SELECT g.arm_id, g.case_id, 0,
    jsonb_build_array(
        jsonb_build_object('role', 'system', 'content', %(system)s::text),
        jsonb_build_object('role', 'user', 'content', g.input)),
    CASE WHEN g.err THEN '' ELSE t.body END,
    CASE WHEN g.err THEN '' ELSE t.body END,
    CASE WHEN g.err THEN NULL ELSE 24 + length(g.input) / 4 END,
    CASE WHEN g.err THEN NULL ELSE 2 + length(t.body) / 4 END,
    CASE WHEN g.err THEN 60000.0 ELSE round((250 + 9 * length(t.body) + 900 * g.u4 * g.u4)::numeric, 1) END,
    NULL,
    CASE WHEN g.err THEN 0 ELSE ((24 + length(g.input) / 4) * %(price_in)s
                                 + (2 + length(t.body) / 4) * %(price_out)s) / 1e6 END,
    CASE WHEN g.err THEN %(error)s ELSE '' END,
    false,
    CASE WHEN g.err THEN jsonb_build_object('error', %(error)s::text)
         ELSE jsonb_build_object(
             'assertions', jsonb_build_array(jsonb_build_object(
                 'type', 'similar', 'score', g.score, 'passed', g.score >= %(threshold)s,
                 'reason', g.reason)),
             'reason', g.reason) END,
    g.scoring_id,
    CASE WHEN g.err THEN 0 ELSE g.score END,
    CASE WHEN g.err THEN false ELSE g.score >= %(threshold)s END,
    g.started + g.pos * interval '500 milliseconds',
    g.finished
FROM (
    SELECT s.*,
        format('similarity %%s %%s %%s', to_char(s.score, 'FM0.00'),
               CASE WHEN s.score >= %(threshold)s THEN '>=' ELSE '<' END,
               to_char(%(threshold)s, 'FM0.00')) AS reason
    FROM (
        SELECT u.*,
            round(least(1.0, greatest(0.0,
                0.93 + u.shift - 0.25 * u.difficulty + 0.14 * (u.u1 - 0.5)))::numeric, 6)::float8 AS score,
            u.u2 < 0.005 AS err,
            (u.pos * 7 + CASE WHEN u.u3 < 0.7 THEN 0 ELSE 1 + u.idx %% 5 END) %% {n_texts} AS text_i
        FROM (
            SELECT a.arm_id, a.scoring_id, a.idx, a.shift, a.started, a.finished,
                c.case_id, c.pos, c.input, c.difficulty,
                (hashtextextended(a.arm_id || ':' || c.case_id, 1) & 1048575) / 1048576.0 AS u1,
                (hashtextextended(a.arm_id || ':' || c.case_id, 2) & 1048575) / 1048576.0 AS u2,
                (hashtextextended(a.arm_id || ':' || c.case_id, 3) & 1048575) / 1048576.0 AS u3,
                (hashtextextended(a.arm_id || ':' || c.case_id, 4) & 1048575) / 1048576.0 AS u4
            FROM bench_arm a CROSS JOIN bench_case c
            WHERE a.idx >= %(low)s AND a.idx < %(high)s
        ) u
    ) s
) g
JOIN bench_text t ON t.i = g.text_i
"""

SUMMARY_SQL = """
SELECT r.arm_id, count(*), count(r.score), avg(r.score), stddev_samp(r.score),
    count(r.passed), count(*) FILTER (WHERE r.passed), count(*) FILTER (WHERE r.error <> ''),
    sum(r.cost), avg(r.prompt_tokens) FILTER (WHERE r.error = ''),
    avg(r.completion_tokens) FILTER (WHERE r.error = ''),
    percentile_cont(0.5) WITHIN GROUP (ORDER BY r.latency_ms) FILTER (WHERE r.error = ''),
    percentile_cont(0.95) WITHIN GROUP (ORDER BY r.latency_ms) FILTER (WHERE r.error = ''),
    avg(length(r.output)) FILTER (WHERE r.error = '')::float8
FROM {table} r JOIN bench_arm a ON a.arm_id = r.arm_id
GROUP BY r.arm_id
"""


def _summary(row, monthly_volume: int) -> dict:
    """What `summarise` stores for a one-sample arm, from SQL aggregates (normal CI for the mean)."""
    from evaluations.analysis.stats import wilson_ci

    n, scored, mean, sd, judged, passes, errors, cost, pt, ct, p50, p95 = row
    half = 1.96 * (sd or 0.0) / max(scored, 1) ** 0.5
    pass_rate, pass_low, pass_high = wilson_ci(passes, judged)
    ok = n - errors
    per_request = cost / ok if ok else None
    return {
        "cases": n,
        "results": n,
        "scored": scored,
        "mean_score": mean,
        "score_ci": [max(0.0, mean - half), min(1.0, mean + half)] if mean is not None else None,
        "pass_rate": pass_rate,
        "pass_ci": [pass_low, pass_high] if pass_rate is not None else None,
        "accuracy": None,
        "macro_f1": None,
        "errors": errors,
        "cost_total": cost,
        "cost_per_request": per_request,
        "monthly_cost": per_request * monthly_volume if per_request is not None else None,
        "prompt_tokens_mean": float(pt) if pt is not None else None,
        "completion_tokens_mean": float(ct) if ct is not None else None,
        "compute_seconds_mean": None,
        "latency_p50_ms": p50,
        "latency_p95_ms": p95,
    }


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def measure(suite, trends_suite, *, requests: int) -> int:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, setup_test_environment
    from django.urls import reverse

    from evaluations.models import Arm, Result, Run

    setup_test_environment()  # the test client's host
    user, _ = get_user_model().objects.get_or_create(username="db-scale-admin")
    user.groups.add(Group.objects.get(name="admin"))
    client = Client()
    client.force_login(user)
    runs = list(Run.objects.filter(suite_version__suite=suite).order_by("created_at", "id"))
    latest, previous = runs[-1], runs[-2]
    arm_latest, arm_previous = (Arm.objects.get(run=r) for r in (latest, previous))
    total = Result.objects.count()
    print(
        f"database: {total:,} results, {len(runs)} runs of {suite.name!r}; trends of {trends_suite.name!r}; "
        f"run #{latest.pk} timed ({latest.expected_results:,} results)"
    )
    results = reverse("evaluations:run-results", args=[latest.pk])
    per_page = 25  # a page number past the end (999) shows the last page
    pages = (latest.expected_results + per_page - 1) // per_page
    compare = reverse("evaluations:compare") + f"?arm={arm_previous.pk}&arm={arm_latest.pk}"
    trends = reverse("evaluations:suite-trends", args=[trends_suite.pk])
    checks = [
        ("run page", reverse("evaluations:run-detail", args=[latest.pk]), {}),
        ("results, page 1", results, {}),
        (f"results, page {pages // 2}", f"{results}?page={pages // 2}", {}),
        (f"results, page {pages} (last)", f"{results}?page={pages}", {}),
        ("results, outcome=fail", f"{results}?outcome=fail", {}),
        ("results, outcome=fail, last page", f"{results}?outcome=fail&page=999", {}),
        ("results, outcome=error", f"{results}?outcome=error", {}),
        ("results, arm + outcome=pass, page 5", f"{results}?arm={arm_latest.pk}&outcome=pass&page=5", {}),
        ("results, q=refund", f"{results}?q=refund", {}),
        ("results, q=refund, last page", f"{results}?q=refund&page=999", {}),
        ("results, htmx fragment, page 2", f"{results}?page=2", {"HTTP_HX_REQUEST": "true"}),
        ("compare, 2 runs, page 1", compare, {}),
        (f"compare, page {pages} (last)", f"{compare}&page={pages}", {}),
        ("compare, view=drops", f"{compare}&view=drops", {}),
        ("compare, view=flipped", f"{compare}&view=flipped", {}),
        ("trends, 2 years x 5 arms, 365 days", f"{trends}?days=365", {}),
    ]  # fmt: skip
    header = f"{'page':<40} {'first':>7} {'p50 ms':>7} {'p95 ms':>7} {'queries':>7}  target"
    print(header)
    print("-" * len(header))
    missed = 0
    worst: dict[str, tuple[float, int, str]] = {}
    for name, url, headers in checks:
        first = None
        for _ in range(2):  # warm-up: templates compiled, connection open, caches filled
            t0 = time.perf_counter()
            response = client.get(url, **headers)
            first = first if first is not None else (time.perf_counter() - t0) * 1000
            if response.status_code != 200:
                print(f"{name}: HTTP {response.status_code} for {url}", file=sys.stderr)
                return 1
        times = []
        for _ in range(requests):
            t0 = time.perf_counter()
            response = client.get(url, **headers)
            times.append((time.perf_counter() - t0) * 1000)
        with CaptureQueriesContext(connection) as queries:
            client.get(url, **headers)
        p50, p95 = _percentile(times, 50), _percentile(times, 95)
        ok = p95 < TARGET_MS
        missed += not ok
        kind = name.split(",")[0]
        worst[kind] = max(worst.get(kind, (0.0, 0, "")), (p95, len(queries.captured_queries), name))
        print(
            f"{name:<40} {first:7.1f} {p50:7.1f} {p95:7.1f} {len(queries.captured_queries):7d}  "
            f"p95 < {TARGET_MS:.0f} ms: {'met' if ok else 'MISSED'}",
            flush=True,
        )
    print(f"{len(checks) - missed} of {len(checks)} pages met the target (p95 < {TARGET_MS:.0f} ms)")
    for kind, (p95, count, name) in worst.items():  # one line per page for bench/run_all.py's table
        print(
            f"{kind} p95, slowest variant ({name}; {count} queries): {p95:.1f} ms "
            f"(target < {TARGET_MS:.0f} ms): {'met' if p95 < TARGET_MS else 'missed'}"
        )
    print(
        f"first: the first request of a page (its figures not cached yet); p50/p95 over {requests} "
        "requests after two warm-ups; queries: of one request"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
