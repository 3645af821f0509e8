"""The CI check .ci/peer_formats.py (CI runs it on a folder of real files beside the repository when
there is one), run here on this repository's own fixtures and on small folders made for the test."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys

from tests.conftest import ROOT
from tests.fixtures import PEER_FORMATS

SCRIPT = ROOT / ".ci" / "peer_formats.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("ci_peer_formats", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


check = _load_script()


def test_every_fixture_imports_or_names_the_file_it_needs(db):
    outcomes = {o.file: o for o in check.check_folder(PEER_FORMATS)}

    assert set(outcomes) == {
        p.name for p in PEER_FORMATS.iterdir() if not p.name.startswith(".") and p.suffix != ".md"
    }
    not_ok = {name: (o.status, o.detail) for name, o in outcomes.items() if o.status != "ok"}
    # The two files whose companions the folder leaves out on purpose (see its README).
    assert not_ok == {
        "openai-evals__registry__renewal.yaml": (
            "incomplete",
            "needs renewal/samples.jsonl, which the folder does not hold",
        ),
        "promptfoo__feedback-f-score__promptfooconfig.yaml": (
            "incomplete",
            "needs comment_cards_sample.csv, which the folder does not hold",
        ),
    }
    config = outcomes["promptfoo__help-desk__promptfooconfig.yaml"]
    assert config.detail == (
        "promptfoo, 5 test and 0 train cases; read with promptfoo__help-desk__prompts.txt"
    )
    assert outcomes["promptfoo__help-desk__prompts.txt"].detail == (
        "read with promptfoo__help-desk__promptfooconfig.yaml"
    )
    assert outcomes["promptfoo__desk-reply-rubric__tests.csv"].detail == (
        "promptfoo, 8 test and 0 train cases (under a stand-in config: the folder holds none for it)"
    )
    assert outcomes["deepeval__goldens.json"].detail == "deepeval, 15 test and 0 train cases"


def test_a_registry_is_imported_with_the_files_it_names(db, tmp_path):
    for name in ("openai-evals__registry__renewal.yaml", "openai-evals__renewal__few_shot.jsonl"):
        shutil.copy(PEER_FORMATS / name, tmp_path / name)
    (tmp_path / "openai-evals__renewal__samples.jsonl").write_text(
        '{"input": [{"role": "user", "content": "one more week with the atlas please"}], "ideal": "1"}\n'
    )
    # Another example's samples.jsonl is not this registry's, though it has the same file name.
    (tmp_path / "openai-evals__other__samples.jsonl").write_text('{"input": "q", "ideal": "a"}\n')

    outcomes = {o.file: o for o in check.check_folder(tmp_path)}

    registry = outcomes["openai-evals__registry__renewal.yaml"]
    assert registry.status == "ok"
    assert registry.detail == (
        "openai-evals, 1 test and 5 train cases; read with openai-evals__renewal__samples.jsonl, "
        "openai-evals__renewal__few_shot.jsonl"
    )
    assert outcomes["openai-evals__renewal__few_shot.jsonl"].detail == (
        "read with openai-evals__registry__renewal.yaml"
    )
    other = outcomes["openai-evals__other__samples.jsonl"]
    assert other.detail == "openai-evals-jsonl, 1 test and 0 train cases"


def test_a_file_that_does_not_import_fails_with_the_reason(db, tmp_path):
    (tmp_path / "mine__good__cases.jsonl").write_text('{"input": "q", "expected": "a"}\n')
    (tmp_path / "mine__broken__cases.jsonl").write_text('{"input": "q", "expected": }\n')
    (tmp_path / "mine__lonely__prompts.txt").write_text("Say {{word}}\n")  # no config reads it
    (tmp_path / "NOTES.md").write_text("not a suite\n")

    outcomes = {o.file: o for o in check.check_folder(tmp_path)}

    assert {name: o.status for name, o in outcomes.items()} == {
        "mine__good__cases.jsonl": "ok",
        "mine__broken__cases.jsonl": "failed",
        "mine__lonely__prompts.txt": "failed",
    }
    assert "line 1: is not valid JSON" in outcomes["mine__broken__cases.jsonl"].detail
    assert "file type '.txt' is not supported" in outcomes["mine__lonely__prompts.txt"].detail


def test_the_script_uses_a_database_of_its_own_and_exits_non_zero_naming_the_file(tmp_path):
    (tmp_path / "mine__good__cases.jsonl").write_text('{"input": "q", "expected": "a"}\n')
    (tmp_path / "mine__broken__cases.jsonl").write_text('{"input": "q", "expected": }\n')
    # As in CI: DATABASE_URL and REDIS_URL name servers the check must not touch (none listen here).
    env = {
        **os.environ,
        "DATABASE_URL": "postgres://nobody@127.0.0.1:9/nowhere",
        "REDIS_URL": "redis://127.0.0.1:9/0",
    }

    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path)],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300,
    )  # fmt: skip

    assert done.returncode == 1, done.stderr
    assert "  ok         mine__good__cases.jsonl: jsonl, 1 test and 0 train cases" in done.stdout
    assert "  failed     mine__broken__cases.jsonl: " in done.stdout
    assert "2 files, 1 imported, 0 incomplete, 1 failed" in done.stdout
    assert done.stderr.strip().splitlines()[-1] == (
        "peer formats: these files failed to import: mine__broken__cases.jsonl"
    )


def test_a_missing_folder_is_exit_status_2(tmp_path, capsys):
    assert check.main([str(tmp_path / "nowhere")]) == 2
    assert "is not a folder" in capsys.readouterr().err
