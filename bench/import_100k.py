"""Importing a large suite: 100,000 cases (about 50 MB of JSON Lines) through the same service the
upload page and `import_suite` use, into a fresh SQLite database.

Figures: wall time and the process's peak memory (ru_maxrss) against the targets: under 20 s and
under 300 MB. Nothing outside a temporary folder is written.

    .venv/bin/python bench/import_100k.py [--cases 100000]
"""

from __future__ import annotations

import argparse
import json
import resource
import time

from harness import setup_django

TARGET_SECONDS = 20.0
TARGET_MB = 300.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=100_000)
    args = parser.parse_args()
    tmp, _ = setup_django("ftvp-import-bench-", embedded=True)
    from evaluations.importers import SourceFile
    from evaluations.services.suites import suite_import

    filler = "lorem ipsum dolor sit amet " * 14  # ~380 characters of input per case
    path = tmp / "bench.jsonl"
    with path.open("w") as fh:  # written line by line: the generator holds no copy in memory
        for i in range(args.cases):
            fh.write(json.dumps({"id": f"c{i:06d}", "input": f"Question {i}: {filler}",
                                 "expected": f"answer {i % 97}", "tags": ["bench"],
                                 "split": "test" if i % 5 else "train"}) + "\n")  # fmt: skip
    data = path.read_bytes()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.monotonic()
    version = suite_import(name="bench", files=[SourceFile("bench.jsonl", data)])
    elapsed = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    count = version.cases.count()
    print(f"file: {len(data) / 1e6:.1f} MB, {count:,} cases imported")
    print(
        f"import time of {count:,} cases: {elapsed:.1f} s (target < {TARGET_SECONDS:.0f} s): "
        + ("met" if elapsed < TARGET_SECONDS else "missed")
    )
    print(
        f"peak memory of the import: {peak:.0f} MB (target < {TARGET_MB:.0f} MB): "
        + ("met" if peak < TARGET_MB else "missed")
    )
    print(f"({before:.0f} MB before the import; the file itself is held in memory)")


if __name__ == "__main__":
    main()
