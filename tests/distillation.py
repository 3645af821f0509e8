"""Distillation test rows (tests/services/test_training_sources.py, tests/views/
test_distillation_entry_points.py): a suite whose train cases are inputs to label, a loopback teacher
that knows the answers to half of them, and its labelling run through the real pipeline."""

from __future__ import annotations

from evaluations.models import Endpoint, Run, RunStatus, Split, SuiteVersion
from evaluations.services.runs import run_create
from tests.factories import CaseFactory, EndpointFactory, SuiteVersionFactory, strategy
from tests.fakeopenai import last_user_text

CHECK = [{"type": "contains", "value": "ANSWER"}]


def teacher_model(body: dict) -> str:
    """Answers "ANSWER <n>" for the train questions it knows (n even), "no idea" for the others."""
    text = last_user_text(body)
    n = int(text.rsplit(" ", 1)[-1])
    return f"ANSWER {n}" if n % 2 == 0 else "no idea"


def support_suite(*, test_cases: int = 4) -> SuiteVersion:
    """Ten train cases without an expected output (inputs to label) but with a check; test cases."""
    version = SuiteVersionFactory(suite__name="support")
    for i in range(10):
        CaseFactory(version=version, key=f"x{i}", position=i, split="train", input=f"train question {i}",
                    expected=None, assertions=CHECK)  # fmt: skip
    for i in range(test_cases):
        CaseFactory(version=version, key=f"t{i}", position=10 + i, input=f"test question {i}",
                    expected=f"ANSWER {i}")  # fmt: skip
    return version


def teacher_endpoint(fake_openai) -> Endpoint:
    fake_openai.responder = teacher_model
    return EndpointFactory(name="big-teacher", base_url=fake_openai.base_url, price_in=10, price_out=30)


def labelling_run(version: SuiteVersion, teacher: Endpoint, task_queue) -> Run:
    """The teacher (system prompt) on the train split, run to the end in process."""
    run = run_create(suite_version=version, arms=[(teacher, strategy("system"))], split=Split.TRAIN)
    task_queue.drain()
    run = Run.objects.get(pk=run.pk)
    assert run.status == RunStatus.SUCCEEDED
    return run
