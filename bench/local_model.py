"""The local model: tokens per second of batched generation, and the memory of a worker holding it.

1. Speed. SmolLM2-135M-Instruct (the `smollm2-135m-instruct` endpoint model) answers the demo's
   support tickets, rendered with the zero-shot strategy (classification into the 5 queues), through
   `LocalProvider.complete_many` with GenerationParams(temperature=0, max_tokens=64): what a run calls.
   The provider's `batch_size` (FTVP_LOCAL_BATCH in a worker) is set to 1, 8 and 32 so each row of the
   table is one batch size. New tokens are the provider's `completion_tokens`: the tokens generated
   up to the end of each answer (the end-of-sequence token and the padding after it are not counted).
   Tokens/s = new tokens / wall seconds of `complete_many`; latency = the wall time of the batch a
   request was in (what each request of the batch waits). "useful" is the share of the batch's
   decoding slots (rows x steps, a batch runs until its longest answer ends) that made new tokens.
   One warm-up call runs first; the model load is reported apart.
2. Memory. A fresh subprocess (`--memory-child`) is set up like a worker (Django, the Celery app) and,
   on the threads of a 4-thread pool like `celery worker --pool threads`, loads the local model,
   generates a batch of 32, embeds 256 texts with the embedder of the settings (MiniLM), then does
   both at once on two threads. After each step it reports the peak during the step (VmHWM, reset
   before the step through /proc/self/clear_refs) and the resident memory after it (VmRSS, anonymous
   and file-backed), from /proc/self/status. Target: a peak under 2 GB. `--no-trim` measures the same
   without `evaluations.heap.release_freed_memory` (the worker before the fix); `--rounds N` repeats
   the last step.

Nothing outside a temporary folder is written; no network. About 2 minutes on 2 idle cores (each of
the two processes spends 15-20 s loading the model from its GGUF).

    .venv/bin/python bench/local_model.py [--batches 1,8,32] [--max-new-tokens 64]
        [--skip-speed | --skip-memory] [--no-trim] [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = "smollm2-135m-instruct"
TARGET_MB = 2048.0
# Prompts per batch size: a few batches of the small sizes, one batch of 32 (keeps the run short).
PROMPTS = {1: 4, 8: 8, 32: 32}
EMBED_TEXTS = 256


def status_mb() -> dict[str, float]:
    """VmRSS, VmHWM, RssAnon and RssFile of this process in MiB."""
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) / 1024
    return out


def ticket_prompts(count: int) -> list[list[dict[str, str]]]:
    """`count` demo tickets as the zero-shot strategy sends them to the model."""
    from evaluations.demo_data.tickets import LABELS, generate
    from evaluations.strategies import RenderContext, render

    ctx = RenderContext(task_type="classification", labels=LABELS)
    return [render("zero-shot", case["input"], ctx) for case in generate(seed=7, train=0, test=count)]


def load_average() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def speed(batches: list[int], max_new: int) -> None:
    import torch

    from evaluations.providers.base import GenerationParams
    from evaluations.providers.local import LocalProvider, load_model

    started = time.perf_counter()
    load_model(MODEL)
    print(
        f"model {MODEL} loaded in {time.perf_counter() - started:.1f} s; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads on {os.cpu_count()} cores; load average {load_average()}"
    )
    params = GenerationParams(temperature=0, max_tokens=max_new)
    LocalProvider(model=MODEL, batch_size=1, max_new_tokens=8).complete_many(ticket_prompts(1), params)

    prompts_all = ticket_prompts(max(PROMPTS.get(b, b) for b in batches))
    print(
        f"\n{'batch':>5} {'prompts':>7} {'new tokens':>10} {'seconds':>8} {'tokens/s':>9} "
        f"{'latency/request':>16} {'useful':>7}"
    )
    rates = {}
    for size in batches:
        prompts = prompts_all[: PROMPTS.get(size, size)]
        provider = LocalProvider(model=MODEL, batch_size=size, max_new_tokens=max_new)
        t0 = time.perf_counter()
        out = provider.complete_many(prompts, params)
        seconds = time.perf_counter() - t0
        failed = [c.error for c in out if not c.ok]
        if failed:
            raise RuntimeError(f"the local model failed: {failed[0]}")
        tokens = sum(c.completion_tokens for c in out)
        slots = 0
        for start in range(0, len(out), size):
            batch = out[start : start + size]
            longest = max(c.completion_tokens for c in batch)
            slots += len(batch) * min(longest + 1, max_new)  # + the end-of-sequence step
        latency = sum(c.latency_ms for c in out) / len(out) / 1000
        rates[size] = tokens / seconds
        print(
            f"{size:>5} {len(prompts):>7} {tokens:>10} {seconds:>8.1f} {tokens / seconds:>9.1f} "
            f"{latency:>14.2f} s {tokens / slots:>7.0%}"
        )
    print(f"load average {load_average()} at the end (2 cores: above 2 means other work shared them)")
    for size in batches:
        print(
            f"local model tokens/s at batch {size}: {rates[size]:.1f} ({max_new} new tokens at most) "
            "(target none): n/a"
        )


def reset_peak() -> None:
    """Start VmHWM again from the current RSS, so each step reports its own peak (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass  # the peaks then run from the start of the process: still the process's peak


def memory_child(max_new: int, rounds: int, trim: bool) -> None:
    """Run in a fresh process: a worker's imports, then the model and the embedder on pool threads."""
    from concurrent.futures import ThreadPoolExecutor

    os.environ.update({"FTVP_DATA_DIR": tempfile.mkdtemp(prefix="ftvp-local-bench-")})
    os.environ.update({"DJANGO_SETTINGS_MODULE": "ftvp_site.settings", "FTVP_EMBEDDER": "minilm"})
    for name in ("DATABASE_URL", "REDIS_URL", "FTVP_SQLITE_PATH"):
        os.environ.pop(name, None)
    import django

    django.setup()
    import workers  # noqa: F401 - the Celery app and its tasks, as in a worker
    from evaluations import heap
    from evaluations.providers.base import GenerationParams
    from evaluations.providers.local import LocalProvider, load_model
    from evaluations.services.result_scores import get_embedder

    if not trim:  # what a worker did before it trimmed the heap after each batch
        heap._malloc_trim = lambda: None
    marks: list[tuple[str, dict[str, float]]] = [("Python, Django, the Celery app", status_mb())]
    prompts = ticket_prompts(32)
    params = GenerationParams(temperature=0, max_tokens=max_new)
    provider = LocalProvider(model=MODEL, batch_size=32, max_new_tokens=max_new)
    texts = [f"{m[-1]['content']} (answer {i})" for i, m in enumerate(ticket_prompts(EMBED_TEXTS))]

    def generate():
        out = provider.complete_many(prompts, params)
        assert all(c.ok for c in out), [c.error for c in out if not c.ok][:1]

    def step(label, *calls):
        reset_peak()
        for future in [pool.submit(call) for call in calls]:
            future.result()
        marks.append((label, status_mb()))

    with ThreadPoolExecutor(max_workers=4) as pool:  # as `celery worker --pool threads`
        step("+ the local model loaded", lambda: load_model(MODEL))
        step("+ a batch of 32 generated", generate)
        step(f"+ the embedder, {len(texts)} texts embedded", lambda: get_embedder().embed(texts))
        for i in range(rounds):
            step(f"both at once on two threads ({i + 1})", generate, lambda: get_embedder().embed(texts))
    print(json.dumps(marks))


def memory(max_new: int, rounds: int, trim: bool) -> None:
    command = [sys.executable, str(Path(__file__).resolve()), "--memory-child"]
    command += ["--max-new-tokens", str(max_new), "--rounds", str(rounds)] + ([] if trim else ["--no-trim"])
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise RuntimeError(f"the memory child failed with exit code {proc.returncode}")
    marks = json.loads(proc.stdout.strip().splitlines()[-1])
    what = "" if trim else ", heap not trimmed (--no-trim)"
    print(f"\nmemory of a worker process, MiB{what}")
    print(f"  {'step':<42} {'peak':>6} {'RSS after':>9} {'anon':>6} {'file':>6}")
    for label, m in marks:
        row = f"{m['VmHWM']:>6.0f} {m['VmRSS']:>9.0f} {m['RssAnon']:>6.0f} {m['RssFile']:>6.0f}"
        print(f"  {label:<42} {row}")
    peak = max(m["VmHWM"] for _, m in marks)
    verdict = "met" if peak < TARGET_MB else "MISSED"
    line = f"worker holding the local model and the embedder, peak RSS: {peak:.0f} MiB (target < 2 GB)"
    print(f"{line}: {verdict}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1,8,32", help="batch sizes, comma-separated")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--skip-memory", action="store_true", help="only the speed table")
    parser.add_argument("--skip-speed", action="store_true", help="only the memory of a worker")
    parser.add_argument("--rounds", type=int, default=1, help="steps of generation and embedding at once")
    parser.add_argument("--no-trim", action="store_true", help="memory without trimming the heap (before)")
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("TQDM_DISABLE", "1")  # the GGUF loader's progress bars
    if args.memory_child:
        memory_child(args.max_new_tokens, args.rounds, not args.no_trim)
        return 0
    if not args.skip_speed:
        speed([int(b) for b in args.batches.split(",")], args.max_new_tokens)
    if not args.skip_memory:
        memory(args.max_new_tokens, args.rounds, not args.no_trim)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
