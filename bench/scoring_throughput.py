"""Scoring throughput against the raw batched `encode` throughput of the same embedder.

Re-scores N stored results (expected outputs already embedded, outputs never seen before) and
compares results/second with texts/second of `SentenceTransformer.encode` on as many fresh texts of
the same shape, in the same process. Target: a ratio of at least 0.8 (scoring adds little to the
embedding work it cannot avoid). No model is called; nothing outside a temporary folder is written.

    .venv/bin/python bench/scoring_throughput.py [--results 10000]
"""

from __future__ import annotations

import argparse
import io
import os
import time

from harness import setup_django

TARGET = 0.8
WORDS = (
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
    "quebec",
    "romeo",
    "sierra",
    "tango",
    "uniform",
    "victor",
    "whiskey",
    "xray",
    "yankee",
    "zulu",
)


def sentence(i: int, salt: str) -> str:
    words = [WORDS[(i * 7 + k * 3 + len(salt)) % len(WORDS)] for k in range(8 + i % 6)]
    return f"{salt} {i}: " + " ".join(words) + "."


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, default=10_000)
    parser.add_argument("--cases", type=int, default=1_000)
    args = parser.parse_args()

    setup_django("ftvp-bench-", embedded=True)
    from evaluations.models import Arm, Result, Run, RunStatus, Scoring, Strategy
    from evaluations.services.endpoints import endpoint_create
    from evaluations.services.result_scores import get_embedder
    from evaluations.services.runs import run_create
    from evaluations.services.scorings import scoring_create, scoring_execute
    from evaluations.services.suites import suite_import

    rows = ["id,input,expected"] + [f"c{i},question {i},{sentence(i, 'expected')}" for i in range(args.cases)]
    version = suite_import(name="bench", fileobj=io.BytesIO("\n".join(rows).encode()), filename="bench.csv")
    endpoint = endpoint_create(name="bench", provider="openai", model="m", base_url="http://127.0.0.1:9/v1")
    repeats = max(1, args.results // args.cases)
    run = run_create(
        suite_version=version, arms=[(endpoint, Strategy.objects.get(name="plain"))], repeats=repeats
    )
    arm = Arm.objects.get(run=run)
    cases = list(version.cases.order_by("position"))
    Result.objects.bulk_create(
        [
            Result(
                arm=arm,
                case=c,
                sample=s,
                output=sentence(i * repeats + s, "output"),
                answer=sentence(i * repeats + s, "output"),
            )
            for i, c in enumerate(cases)
            for s in range(repeats)
        ],
        batch_size=2000,
    )
    Run.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED)
    n = Result.objects.filter(arm=arm).count()

    embedder = get_embedder()
    model = embedder.model()
    model.encode(["warm up"] * 64, batch_size=64)
    # The expected outputs are embedded once per suite version, before any re-score.
    first = scoring_create(run=run)
    scoring_execute(scoring_id=first.pk)
    Result.objects.filter(arm=arm).update(output="", answer="")
    for start in range(0, n, 5000):  # fresh outputs: nothing of them is cached
        ids = list(
            Result.objects.filter(arm=arm).order_by("pk").values_list("pk", flat=True)[start : start + 5000]
        )
        objs = [Result(pk=pk, output=sentence(pk, "fresh"), answer=sentence(pk, "fresh")) for pk in ids]
        Result.objects.bulk_update(objs, ["output", "answer"], batch_size=2000)

    raw_texts = [sentence(i, "raw") for i in range(n)]
    started = time.perf_counter()
    model.encode(
        raw_texts, batch_size=64, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
    )
    raw_seconds = time.perf_counter() - started

    scoring = scoring_create(run=run, trigger=Scoring.Trigger.RESCORE)
    started = time.perf_counter()
    if os.environ.get("BENCH_PROFILE"):
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.runcall(scoring_execute, scoring_id=scoring.pk)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    else:
        scoring_execute(scoring_id=scoring.pk)
    score_seconds = time.perf_counter() - started

    # Warm caches: the same outputs scored again (a re-score after an assertion change) embed nothing.
    warm = scoring_create(run=run, trigger=Scoring.Trigger.RESCORE)
    started = time.perf_counter()
    scoring_execute(scoring_id=warm.pk)
    warm_seconds = time.perf_counter() - started

    raw_rate, score_rate, warm_rate = n / raw_seconds, n / score_seconds, n / warm_seconds
    ratio = score_rate / raw_rate
    print(f"embedder            {embedder.name} on {os.cpu_count()} CPU cores")
    print(f"results re-scored   {n:,} ({args.cases:,} cases x {repeats} samples; expected outputs cached)")
    print(f"raw encode          {raw_rate:,.0f} texts/s ({raw_seconds:.1f} s)")
    print(f"re-score            {score_rate:,.0f} results/s ({score_seconds:.1f} s)")
    print(f"re-score, warm      {warm_rate:,.0f} results/s ({warm_seconds:.1f} s; outputs embedded)")
    verdict = "met" if ratio >= TARGET else "missed"
    print(f"scoring / raw encode: {ratio:.2f} (target >= {TARGET}): {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
