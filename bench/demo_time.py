"""The demo's wall time: `manage.py rundemo --no-serve` on a fresh data folder, then once more.

The first run migrates, generates the demo suite, starts a worker, fine-tunes the local model
(LoRA on the CPU), evaluates the prompting ladder and the fine-tune, and decides; the second must
reuse all of it (idempotent: nothing is trained, evaluated or created again). Target: the first run
under 600 s on a 2-core machine (installing packages is not included: it depends on the network).
Nothing outside a temporary folder is written.

    .venv/bin/python bench/demo_time.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = 600.0
ROOT = Path(__file__).resolve().parents[1]


def rundemo(env: dict) -> tuple[float, str]:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "manage.py", "rundemo", "--no-serve"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit(f"rundemo failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return elapsed, proc.stdout


def counts(env: dict) -> dict:
    code = (
        "import json; from evaluations.models import *; print(json.dumps({m.__name__: m.objects.count() "
        "for m in (Suite, SuiteVersion, Endpoint, FineTuneJob, Run, Result)}))"
    )
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def fine_tune_vs_zero_shot(env: dict) -> dict:
    """The acceptance check: the fine-tuned arm against zero-shot, paired on the demo's test cases."""
    code = """
import json
from evaluations.analysis.compare import compare_scores
from evaluations.models import FineTuneJob, Result
job = FineTuneJob.objects.filter(status="succeeded").latest("id")
def per_case(**arm):
    return dict(Result.objects.filter(arm__run=job.run, **arm).values_list("case__key", "score"))
zs = per_case(arm__strategy__name="zero-shot")
ft = per_case(arm__endpoint=job.endpoint)
c = compare_scores(zs, ft)
print(json.dumps({"zero_shot": c.mean_a, "fine_tuned": c.mean_b, "diff": c.diff, "p": c.p_value,
                  "verdict": c.verdict, "cases": c.n}))
"""
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="ftvp-demo-bench-") as tmp:
        env = {**os.environ, "FTVP_DATA_DIR": tmp, "FTVP_DEMO_PASSWORD": "bench-only-password"}
        for name in ("DATABASE_URL", "REDIS_URL", "FTVP_SQLITE_PATH", "FTVP_MEDIA_ROOT"):
            env.pop(name, None)
        first, out = rundemo(env)
        after_first = counts(env)
        versus = fine_tune_vs_zero_shot(env)
        second, _ = rundemo(env)
        after_second = counts(env)
    verdict = next((line.strip() for line in out.splitlines() if line.startswith("5/5")), "?")
    print(
        f"demo, first run:  {first:6.1f} s  (target < {TARGET:.0f} s)  {'OK' if first < TARGET else 'MISSED'}"
    )
    print(f"demo, second run: {second:6.1f} s  (reuses everything)")
    print(f"idempotent: {after_first == after_second}  {after_second}")
    print(verdict)
    print(
        f"fine-tuned {versus['fine_tuned']:.3f} vs zero-shot {versus['zero_shot']:.3f} on {versus['cases']} "
        f"paired cases: {versus['diff']:+.3f}, p={versus['p']:.2g} ({versus['verdict']}; target: better)"
    )
    if after_first != after_second:
        sys.exit("the second run created something: the demo is not idempotent")
    if versus["verdict"] != "better":
        sys.exit("the fine-tuned arm is not significantly better than zero-shot")


if __name__ == "__main__":
    main()
