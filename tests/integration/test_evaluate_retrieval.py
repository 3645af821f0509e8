"""`manage.py evaluate --arm E:few-shot-nearest --arm E:rag --wait --json` as a new user runs it on
embedded defaults (SQLite, the filesystem broker, a worker the command starts, the packaged MiniLM
embedder), against a loopback OpenAI-compatible server: the suite and its knowledge come in through
`import_suite` and `import_knowledge`, and the arms' JSON carries the retrieval metrics."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.fakeopenai import FakeOpenAI, last_user_text

pytestmark = pytest.mark.integration

TOPICS = ("apple", "river", "guitar", "planet", "castle", "violin")
FACT = re.compile(r"registry code of the (\w+) is (code-\w+)")


def _model(body: dict) -> str:
    """Right from a fact in the prompt, or from a demonstration on the question's topic."""
    question = last_user_text(body)
    prompt = "\n".join(str(m.get("content")) for m in body["messages"])
    facts = dict(FACT.findall(prompt))
    shown = {m["content"] for m in body["messages"][:-1] if m.get("role") == "assistant"}
    for topic in TOPICS:
        if topic in question.split() and (topic in facts or f"code-{topic}" in shown):
            return f"code-{topic}"
    return "unknown"


def test_evaluate_nearest_and_rag_on_embedded_defaults_reports_retrieval(tmp_path):
    cases = []
    for topic in TOPICS:
        for i in range(2):
            cases.append({"id": f"x-{topic}-{i}", "input": f"a question about {topic} , example {i}",
                          "expected": f"code-{topic}", "split": "train"})  # fmt: skip
        cases.append({"id": f"t-{topic}", "input": f"What is the registry code of the {topic} ?",
                      "expected": f"code-{topic}", "metadata": {"gold_docs": [f"{topic}.md"]}})  # fmt: skip
    (tmp_path / "suite.jsonl").write_text("\n".join(json.dumps(c) for c in cases) + "\n")
    knowledge = tmp_path / "knowledge"
    knowledge.mkdir()
    for topic in TOPICS:
        (knowledge / f"{topic}.md").write_text(
            f"# {topic}\n\nThe registry code of the {topic} is code-{topic}.\n"
        )
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "FTVP_EMBEDDER"}}
    env.update(FTVP_DATA_DIR=str(tmp_path / "data"), FTVP_HTTP_RETRIES="1")

    def manage(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=timeout)  # fmt: skip
        assert done.returncode == 0, f"{args[0]} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        return done

    with FakeOpenAI(responder=_model) as server:
        manage("migrate", "--verbosity", "0")
        manage("import_suite", str(tmp_path / "suite.jsonl"), "--name", "facts")
        manage("import_knowledge", "--suite", "facts", str(knowledge))
        manage("add_endpoint", "E", "--provider", "openai", "--model", "m", "--base-url", server.base_url)
        done = manage("evaluate", "--suite", "facts", "--arm", "E:few-shot-nearest", "--arm", "E:rag",
                      "--wait", "--json", timeout=300)  # fmt: skip

    report = json.loads(done.stdout)
    assert report["status"] == "succeeded" and report["suite_version"] == 2  # the knowledge's version
    arms = {arm["strategy"]: arm for arm in report["arms"]}
    assert arms["few-shot-nearest"]["mean_score"] == 1.0 and "retrieval" not in arms["few-shot-nearest"]
    assert arms["rag"]["mean_score"] == 1.0
    assert arms["rag"]["retrieval"] == {
        "k": 3, "cases": 6, "cases_with_gold": 6, "recall_at_k": 1.0, "mrr": 1.0, "hit_rate": 1.0,
    }  # fmt: skip
