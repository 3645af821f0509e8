"""`manage.py finetune --backend openai --wait --json` as a new user runs it on embedded defaults
(SQLite, the filesystem broker, a worker the command starts), against a loopback server speaking the
OpenAI fine-tuning API (tests/fakefinetune.py): the job is uploaded, created once, polled by the
worker to success, its endpoint registered with its training cost, the ladder and the fine-tune
evaluated, and the decision names the fine-tuned arm."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.fakefinetune import FakeFineTune
from tests.fakeopenai import last_user_text

pytestmark = pytest.mark.integration

LABELS = ("billing", "access")


def _model(body: dict) -> str:
    """The fine-tuned model routes every ticket right; the base model always says billing."""
    text = last_user_text(body)
    if body["model"].startswith("ft:"):
        return "access" if "password" in text else "billing"
    return "billing"


def test_a_hosted_fine_tune_from_the_command_line_is_trained_registered_and_evaluated(tmp_path):
    cases = []
    for i in range(18):
        label = LABELS[i % 2]
        text = f"ticket {i}: " + ("I forgot my password" if label == "access" else "my invoice is wrong")
        cases.append({"id": f"c{i}", "input": text, "expected": label, "split": "test" if i < 6 else "train"})
    (tmp_path / "suite.jsonl").write_text("\n".join(json.dumps(c) for c in cases) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(FTVP_DATA_DIR=str(tmp_path / "data"), FTVP_EMBEDDER="hashing", FTVP_FINETUNE_POLL_SECONDS="1",
               FTVP_TEST_KEY="sk-test-hosted-0123456789")  # fmt: skip

    def manage(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=timeout)  # fmt: skip
        if check:
            assert done.returncode == 0, f"{args[0]} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        return done

    with FakeFineTune(responder=_model, api_key="sk-test-hosted-0123456789", run_polls=2) as server:
        manage("migrate", "--verbosity", "0")
        manage(
            "import_suite",
            str(tmp_path / "suite.jsonl"),
            "--name",
            "tickets",
            "--task-type",
            "classification",
        )
        manage("add_endpoint", "gpt-mini", "--provider", "openai", "--model", "gpt-mini", "--base-url",
               server.base_url, "--api-key-env", "FTVP_TEST_KEY", "--price-in", "1", "--price-out", "2",
               "--price-train", "3")  # fmt: skip
        done = manage("finetune", "--suite", "tickets", "--base", "gpt-mini", "--backend", "openai",
                      "--epochs", "2", "--suffix", "routing", "--wait", "--json", "--timeout", "240",
                      timeout=300)  # fmt: skip
        decision = json.loads(manage("decision", "--suite", "tickets", "--json").stdout)

    report = json.loads(done.stdout)
    assert report["status"] == "succeeded" and report["backend"] == "openai", done.stderr
    assert report["endpoint"] == f"gpt-mini-ft{report['job_id']}"
    assert report["trained_tokens"] == 12_000 and report["training_cost"] == pytest.approx(0.036)
    assert report["run_id"] and report["run_status"] == "succeeded"
    assert len(server.creates) == 1  # created once, however often it was polled
    # The training and validation files together hold exactly the train split, no test input.
    shown = {m["content"] for fid in server.files for line in server.file_lines(fid) for m in line["messages"]
             if m["role"] == "user"}  # fmt: skip
    assert shown == {c["input"] for c in cases if c["split"] == "train"}
    arms = {row["arm"]: row for row in decision["ladder"]}
    tuned = f"gpt-mini-ft{report['job_id']} · plain"
    assert tuned in arms and arms[tuned]["mean"] == 1.0
    assert "sk-test-hosted" not in done.stdout + done.stderr
