"""A finished run whose every user- or model-supplied text is hostile HTML/JS (or any text given).

    run, payloads = seed_hostile_run()

The suite (its name, source file name, case ids, inputs, expected outputs, tags), the endpoints, a
strategy, the model outputs and an error, a review's comment and corrected output, a finding's title and
its acknowledgement, a schedule's name, a sign-off's note and approval comment, a failed fine-tune's
error, an alert channel's name and the audit log's entries about them all carry one of `payloads`. The
run is a succeeded run of three arms (two endpoints: a base one and a fine-tuned one; zero-shot, a
hostile-named strategy, plain) with trend points, and is the suite's baseline (signed off).

No model is called and no worker is needed: rows are written through the services where they exist
(so the audit log holds them too) and straight to the database otherwise. Works in `db` and
`transactional_db` tests (role groups and built-in strategies are made again when a flush removed them).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import NamedTuple

from django.utils import timezone

from evaluations.models import (
    AlertChannel,
    Approval,
    Case,
    Endpoint,
    FineTuneJob,
    FineTuneStatus,
    Result,
    Run,
    Strategy,
    SuiteVersion,
)

# What a page must never contain unescaped, and the payloads that would put it there.
PAYLOADS: tuple[str, ...] = (
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '"><svg onload=alert(1)>',
    "</script><script>alert(1)</script>",
)
FORBIDDEN: tuple[str, ...] = ("<script>alert", "<img src=x onerror", "<svg onload")

TEST_CASES = 6
TRAIN_CASES = 2


class HostileRun(NamedTuple):
    run: Run
    payloads: tuple[str, ...]


def _ensure_roles_and_strategies() -> None:
    """A transactional test's flush removes what the migrations made: put it back."""
    from django.contrib.auth.models import Group

    from evaluations.roles import ROLE_NAMES, roles_bootstrap

    if Group.objects.filter(name__in=ROLE_NAMES).count() < len(ROLE_NAMES):
        roles_bootstrap()
    if not Strategy.objects.filter(name="zero-shot", version=1).exists():
        import importlib

        from django.apps import apps

        importlib.import_module("evaluations.migrations.0002_builtin_strategies").add(apps, None)


def seed_hostile_run(*, payloads: Sequence[str] = PAYLOADS, user=None) -> HostileRun:
    """Seed the hostile run described above; `user` (optional) uploads the suite and starts the run.

    Returns (run, payloads): each payload appears in several places; `payloads[0]` is in the suite's
    name, `payloads[1]` in the base endpoint's, `payloads[2]` in the strategy's, `payloads[3 % n]` in
    the fine-tuned endpoint's."""
    from evaluations.importers.base import SourceFile
    from evaluations.services.findings import finding_acknowledge, finding_record
    from evaluations.services.reviews import review_save
    from evaluations.services.schedules import schedule_create
    from evaluations.services.signoffs import signoff_decide, signoff_request
    from evaluations.services.suites import suite_import
    from tests.factories import EndpointFactory, UserFactory
    from tests.runs import run_summarise

    payloads = tuple(payloads)
    n = len(payloads)
    if not n:
        raise ValueError("give at least one payload")

    def p(i: int) -> str:
        return payloads[i % n]

    _ensure_roles_and_strategies()
    seq = Run.objects.count() + Endpoint.objects.count()  # names stay unique when called twice
    uploader = user or UserFactory(username=f"hostile-uploader-{seq}", roles=["admin"])
    requester = UserFactory(username=f"hostile-requester-{seq}", roles=["admin"])
    approver = UserFactory(username=f"hostile-approver-{seq}", roles=["admin"])

    # -- the suite, through the importer (the audit log records the upload) ---------------------------
    lines = []
    for i in range(TEST_CASES + TRAIN_CASES):
        record = {
            "id": f"{p(i)} case {i}",
            "input": f"{p(i + 1)} (question {i})",
            "expected": f"{p(i + 2)} (answer {i})",
            "tags": [f"{p(i + 3)} tag"],
            "metadata": {"note": p(i)},
            "split": "test" if i < TEST_CASES else "train",
        }
        if i == 1:  # chat messages as input
            record["input"] = [
                {"role": "system", "content": f"{p(i)} (system)"},
                {"role": "user", "content": f"{p(i + 1)} (user)"},
            ]
        lines.append(json.dumps(record))
    version: SuiteVersion = suite_import(
        name=f"{p(0)} suite {seq}"[:200],
        files=[SourceFile(f"{p(2)}.jsonl".replace("/", "_"), "\n".join(lines).encode())],
        description=f"{p(1)} (description)",
        user=uploader,
    )
    suite = version.suite

    # -- endpoints, a strategy ------------------------------------------------------------------------
    base = EndpointFactory(name=f"{p(1)} base {seq}"[:100], model=f"{p(2)} model"[:300])
    tuned = EndpointFactory(
        name=f"{p(3)} tuned {seq}"[:100], kind="fine_tuned", base_endpoint=base, training_cost=5.0
    )
    hostile_strategy, _ = Strategy.objects.get_or_create(
        name=f"{p(2)} strategy"[:100],
        version=1,
        defaults={"kind": "system", "params": {"system": f"{p(0)} (system prompt)"}, "description": p(1)},
    )
    zero_shot = Strategy.objects.get(name="zero-shot", version=1)
    plain = Strategy.objects.get_or_create(name="plain", version=1, defaults={"kind": "plain"})[0]

    # -- the run: three arms, hostile outputs and one hostile error ------------------------------------
    from evaluations.models import Arm, RunStatus

    cases = list(Case.objects.filter(version=version, split="test").order_by("position"))
    now = timezone.now()
    run = Run.objects.create(
        suite_version=version, status=RunStatus.SUCCEEDED, started_at=now, finished_at=now, created_by=None
    )
    arms = []
    for position, (endpoint, strategy) in enumerate(
        ((base, zero_shot), (base, hostile_strategy), (tuned, plain))
    ):
        arm = Arm.objects.create(run=run, endpoint=endpoint, strategy=strategy, position=position)
        arms.append(arm)
        rows = []
        for i, case in enumerate(cases):
            failed = position == 0 and i == len(cases) - 1
            score = 1.0 if (i + position) % 3 else 0.25
            text = f"{p(i + position)} (output {i})"
            rows.append(
                Result(
                    arm=arm,
                    case=case,
                    prompt=[{"role": "user", "content": f"{p(i)} (prompt)"}],
                    output="" if failed else text,
                    answer="" if failed else text,
                    prompt_tokens=None if failed else 40 + position * 20,
                    completion_tokens=None if failed else 8,
                    latency_ms=120.0 + i,
                    cost=0.0 if failed else 0.0001 * (position + 1),
                    error=f"{p(i)} (endpoint error)" if failed else "",
                    score=0.0 if failed else score,
                    passed=False if failed else score >= suite.pass_threshold,
                    scores={} if failed else {f"{p(i)} similar": score},
                    scored_at=now,
                )
            )
        Result.objects.bulk_create(rows)
    run_summarise(run)

    # -- what people add: a review, a finding, a schedule, a sign-off -----------------------------------
    first = Result.objects.filter(arm=arms[1]).order_by("case__position").first()
    review_save(
        result=first, reviewer=approver, verdict="corrected", corrected_output=f"{p(3)} (fixed)",
        comment=f"{p(0)} (review)",
    )  # fmt: skip
    review_save(
        result=Result.objects.filter(arm=arms[0]).order_by("case__position").first(),
        reviewer=requester, verdict="comment", comment=f"{p(1)} (comment)",
    )  # fmt: skip
    finding = finding_record(
        run=run,
        arm=arms[1],
        kind="regression",
        suite=suite,
        severity="warning",
        title=f"{p(2)} (finding)",
        details={"summary": f"{p(3)} (details)"},
    )
    finding_acknowledge(finding=finding, user=approver, comment=f"{p(0)} (acknowledged)")
    schedule_create(
        suite=suite, name=f"{p(1)} nightly"[:200], arms=[(base, zero_shot)], enabled=False, user=uploader
    )
    signoff = signoff_request(run=run, user=requester, note=f"{p(2)} (note)")
    signoff_decide(
        signoff=signoff, user=approver, decision=Approval.Decision.APPROVE, comment=f"{p(3)} (approved)"
    )
    FineTuneJob.objects.create(
        suite_version=version,
        base_endpoint=base,
        status=FineTuneStatus.FAILED,
        error=f"{p(0)} (training failed)",
        hyperparameters={"note": p(1)},
        created_by=uploader,
    )
    AlertChannel.objects.get_or_create(
        name=f"{p(2)} alerts {seq}"[:100], defaults={"kind": "webhook", "url_env": "FTVP_HOSTILE_HOOK_URL"}
    )
    run.refresh_from_db()
    return HostileRun(run, payloads)
