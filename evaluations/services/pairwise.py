"""Pairwise judging: a run's `pairwise` assertions compared with their reference outputs, run-level.

A batch is scored as soon as it is generated, when the reference arm's output for the same case may not
exist yet, so the batch scorer leaves each pairwise check pending (skipped, flagged in the result's
scores with ``pairwise_pending``) and this step judges them once every batch of the run is scored: from
`run_finalize`, before the arms' summaries, and from a re-score (`scoring_execute`), before its
summaries. It handles only results still pending, a chunk at a time, each chunk saved as it is done, so
a finalize that dies half-way resumes where it stopped and a duplicate finalize finds nothing left
(at most the chunk in flight is judged twice, to the same verdict with a temperature-0 judge).

References (the `against` of the assertion):
- ``teacher``: the arm of this run whose endpoint and strategy are the teacher of the fine-tuning job
  this run evaluates (FineTuneJob.run, teacher_endpoint, teacher_strategy); same case, same sample.
- ``baseline``: the same endpoint and strategy in the suite's baseline run (Suite.baseline_run), on the
  case with the same key, sample 0 (the baseline's first answer is the one it was signed off with).
- ``<endpoint>:<strategy>``: that arm of this run; same case, same sample.
The reference arm itself, and a result whose reference has no output (not generated, or its call
failed), get no pairwise score: the check is skipped with the reason, never scored as a tie.

The order the two answers are shown in is drawn per pair from a seed (scoring/pairwise.py); the seed,
who was shown first, the judge's raw reply and the outcome are kept in the check's ``pairwise`` details.
A judge error fails the check (score 0, the error in its reason), as llm-rubric does: visible, not a tie.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from evaluations.models import Arm, FineTuneJob, Result, Run, Scoring
from evaluations.providers.base import GenerationParams
from evaluations.scoring import assertions
from evaluations.scoring import pairwise as pw
from evaluations.services.endpoints import endpoint_provider
from evaluations.services.judge import judge_endpoint
from evaluations.services.leases import heartbeat
from evaluations.services.result_scores import case_assertions
from evaluations.services.secrets import redactor

CHUNK = 100
RAW_LIMIT = 500
IS_REFERENCE = "this arm is the reference"

PAIRWISE_SYSTEM = (
    "You compare two answers to the same input and decide which one answers it better. Judge the "
    "content only: ignore which answer comes first and how long each is. Reply with exactly one of A, "
    "B or TIE on the first line, then at most one short sentence saying why."
)


def input_text(case_input: object) -> str:
    """A case's input as text: the text itself, or the chat messages one per line as `role: content`."""
    if isinstance(case_input, str):
        return case_input
    if isinstance(case_input, list):
        lines = []
        for message in case_input:
            if isinstance(message, dict):
                lines.append(f"{message.get('role', 'user')}: {message.get('content', '')}")
            else:
                lines.append(str(message))
        return "\n".join(lines)
    return "" if case_input is None else str(case_input)


def pairwise_prompt(
    question: str, first: str, second: str, rubric: str = "", expected: tuple[str, ...] = ()
) -> list[dict]:
    """The judge's messages: the input, the criteria, the reference answer(s) if any, then A and B."""
    parts = [f"Input:\n{question}"]
    if rubric:
        parts.append(f"Criteria:\n{rubric}")
    if expected:
        parts.append("Expected answer(s):\n" + "\n".join(f"- {e}" for e in expected))
    parts.append(f"Answer A:\n{first}")
    parts.append(f"Answer B:\n{second}")
    parts.append("Which answer is better: A, B or TIE?")
    return [{"role": "system", "content": PAIRWISE_SYSTEM}, {"role": "user", "content": "\n\n".join(parts)}]


Request = tuple[str, str, str, str, tuple[str, ...]]  # (input, answer A, answer B, rubric, expected)


class PairJudge:
    """Asks the judge endpoint about every pair given to `prepare`, in one provider call; each reply
    (secrets masked) or its error is then looked up by the pair."""

    def __init__(self, endpoint):
        self.endpoint = endpoint
        self.replies: dict[Request, str | Exception] = {}

    def prepare(self, requests: list[Request]) -> None:
        todo = [r for r in dict.fromkeys(requests) if r not in self.replies]
        if not todo:
            return
        redact = redactor()
        provider = endpoint_provider(self.endpoint)
        try:
            completions = provider.complete_many(
                [pairwise_prompt(*r) for r in todo], GenerationParams(temperature=0.0, max_tokens=100)
            )
        finally:
            close = getattr(provider, "close", None)
            if close is not None:
                close()
        for request, completion in zip(todo, completions, strict=True):
            if completion.error:
                self.replies[request] = RuntimeError(redact(completion.error))
            else:
                self.replies[request] = redact(completion.text)

    def __call__(self, request: Request) -> str:
        reply = self.replies.get(request)
        if reply is None:
            raise RuntimeError("the judge was not asked about this pair")
        if isinstance(reply, Exception):
            raise reply
        return reply


# --- references -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """Where a scored arm's reference answers come from, or why there are none (`missing`)."""

    arm_id: int | None = None
    label: str = ""
    sample: int | None = None  # None: the scored result's own sample; else this one (the baseline's 0)
    missing: str = ""


def _arm_label(arm: Arm) -> str:
    return f"{arm.endpoint.name}:{arm.strategy}"


def _teacher_arm(run: Run) -> tuple[Arm | None, str]:
    job = (
        FineTuneJob.objects.filter(run=run, teacher_endpoint__isnull=False, teacher_strategy__isnull=False)
        .select_related("teacher_endpoint", "teacher_strategy")
        .order_by("-created_at", "-id")
        .first()
    )
    if job is None:
        return None, "no fine-tuning job with a teacher is evaluated by this run"
    arm = (
        run.arms.select_related("endpoint", "strategy")
        .filter(endpoint=job.teacher_endpoint, strategy=job.teacher_strategy)
        .first()
    )
    if arm is None:
        return None, (
            f"the teacher {job.teacher_endpoint.name}:{job.teacher_strategy} of fine-tune #{job.pk} "
            "is not an arm of this run"
        )
    return arm, ""


def resolve_reference(run: Run, arm: Arm, against: str, *, _teacher=None) -> Reference:
    """The reference of `arm`'s pairwise checks against `against` (see the module's docstring)."""
    parsed = pw.parse_against(against)
    if parsed is None:
        return Reference(missing=f"'against' {against!r} is not understood")
    kind, endpoint_name, strategy_name = parsed
    if kind == pw.TEACHER:
        teacher, why = _teacher if _teacher is not None else _teacher_arm(run)
        if teacher is None:
            return Reference(missing=why)
        ref = Reference(arm_id=teacher.pk, label=f"the teacher {_arm_label(teacher)}")
    elif kind == pw.BASELINE:
        baseline_run_id = run.suite_version.suite.baseline_run_id
        if baseline_run_id is None:
            return Reference(missing="the suite has no baseline run")
        other = (
            Arm.objects.select_related("endpoint", "strategy")
            .filter(run_id=baseline_run_id, endpoint_id=arm.endpoint_id, strategy_id=arm.strategy_id)
            .first()
        )
        if other is None:
            return Reference(missing=f"the baseline run #{baseline_run_id} has no arm {_arm_label(arm)}")
        ref = Reference(
            arm_id=other.pk, label=f"the baseline (run #{baseline_run_id}, {_arm_label(other)})", sample=0
        )
    else:
        candidates = run.arms.select_related("endpoint", "strategy").filter(endpoint__name=endpoint_name)
        other = next(
            (a for a in candidates if strategy_name in (str(a.strategy), a.strategy.name)),
            None,
        )
        if other is None:
            return Reference(missing=f"this run has no arm {endpoint_name}:{strategy_name}")
        ref = Reference(arm_id=other.pk, label=_arm_label(other))
    if ref.arm_id == arm.pk:
        return Reference(missing=IS_REFERENCE)
    return ref


# --- the run-level step ------------------------------------------------------------------------------


@dataclass
class _Check:
    result: Result
    index: int  # the check's position among the result's assertions
    assertion: dict
    reference: Reference
    request: Request | None = None
    details: dict | None = None
    verdict: assertions.Verdict | None = None


def _pending(run: Run):
    return Result.objects.filter(arm__run=run, scores__pairwise_pending=True)


def pairwise_score_run(*, scoring: Scoring | None, order: str = "random", chunk: int = CHUNK) -> int:
    """Judge every pending pairwise check of the scoring's run and write the results' scores again.

    Returns how many pairs the judge was asked about. `order`: "random" (the seeded draw, the default),
    or "scored-first" / "reference-first" to fix the order (to show what position bias does)."""
    if order not in pw.ORDERS:
        raise ValueError(f"order must be one of {', '.join(pw.ORDERS)}")
    if scoring is None:
        return 0
    if not _pending(Run(pk=scoring.run_id)).exists():
        return 0
    # One judging step per scoring at a time (a finalize sent again by the recovery sweep, a re-score):
    # the lease is taken with a conditional update, kept fresh by a heartbeat, released at the end.
    lease = Scoring.objects.filter(pk=scoring.pk)
    now = timezone.now()
    stale = now - timedelta(seconds=settings.FTVP_STALL_SECONDS)
    if not lease.filter(Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=stale)).update(heartbeat_at=now):
        raise PairwiseBusy(f"the pairwise checks of run #{scoring.run_id} are being judged by another worker")
    try:
        with heartbeat(lease, name=f"pairwise-{scoring.pk}"):
            return _score_pending(scoring, order, chunk)
    finally:
        lease.update(heartbeat_at=None)


class PairwiseBusy(RuntimeError):
    """Another worker holds the pairwise judging of this scoring; it finishes the step."""


def _score_pending(scoring: Scoring, order: str, chunk: int) -> int:
    run = Run.objects.select_related("suite_version__suite").get(pk=scoring.run_id)
    version = run.suite_version
    arms = {a.pk: a for a in run.arms.select_related("endpoint", "strategy")}
    references: dict[tuple[str, int], Reference] = {}
    teacher = None
    endpoint = judge_endpoint()
    asked = 0
    last_id = 0
    while True:
        results = list(
            _pending(run).filter(pk__gt=last_id).select_related("case").defer("prompt").order_by("pk")[:chunk]
        )
        if not results:
            break
        last_id = results[-1].pk
        checks: list[_Check] = []
        plans: list[tuple[Result, list[dict]]] = []
        for r in results:
            expected = tuple(r.case.expected_list)
            listed = case_assertions(
                r.case.assertions,
                has_expected=bool(expected),
                suite_defaults=scoring.default_assertions or [],
                task_type=version.task_type,
            )
            plans.append((r, listed))
            entries = (r.scores or {}).get("assertions") or []
            if len(entries) != len(listed):  # _recombine clears its flag
                continue
            for i, (a, entry) in enumerate(zip(listed, entries, strict=True)):
                if assertions.base_type(a) != pw.TYPE or not entry.get("pending"):
                    continue
                against = str(a.get("against", ""))
                key = (against, r.arm_id)
                if key not in references:
                    if teacher is None and against.strip() == pw.TEACHER:
                        teacher = _teacher_arm(run)  # once per run, whichever arm asks first
                    references[key] = resolve_reference(run, arms[r.arm_id], against, _teacher=teacher)
                checks.append(_Check(result=r, index=i, assertion=a, reference=references[key]))
        asked += _judge_chunk(run, checks, endpoint, order)
        changed = [r for r, listed in plans if _recombine(r, listed, checks)]
        Result.objects.bulk_update(changed, ["scores", "score", "passed", "scored_at"])
    return asked


def _reference_answers(checks: list[_Check]) -> dict[tuple[int, str, int], tuple[int, str, str]]:
    """(arm, case key, sample) -> (result id, answer, error) of the references these checks need."""
    wanted: dict[int, set[str]] = {}
    for c in checks:
        if c.reference.arm_id is not None:
            wanted.setdefault(c.reference.arm_id, set()).add(c.result.case.key)
    if not wanted:
        return {}
    query = Q()
    for arm_id, keys in wanted.items():
        query |= Q(arm_id=arm_id, case__key__in=sorted(keys))
    rows = Result.objects.filter(query).values_list("arm_id", "case__key", "sample", "id", "answer", "error")
    return {(arm_id, key, sample): (pk, answer, error) for arm_id, key, sample, pk, answer, error in rows}


def _judge_chunk(run: Run, checks: list[_Check], endpoint, order: str) -> int:
    answers = _reference_answers(checks)
    for c in checks:
        ref = c.reference
        details = {"against": str(c.assertion.get("against", ""))}
        if ref.missing:
            c.verdict = _skipped(f"not applicable: {ref.missing}")
            c.details = details | {"not_applicable": ref.missing}
            if ref.missing == IS_REFERENCE:
                c.details["is_reference"] = True
            continue
        r = c.result
        sample = r.sample if ref.sample is None else ref.sample
        found = answers.get((ref.arm_id, r.case.key, sample))
        details |= {"reference": ref.label, "reference_arm": ref.arm_id}
        if found is None:
            why = f"{ref.label} has no output for this case (not generated)"
        elif found[2]:
            why = f"{ref.label} has no output for this case (its call failed)"
        else:
            why = ""
        if why:
            c.verdict = _skipped(f"not applicable: {why}")
            c.details = details | {"not_applicable": why}
            continue
        ref_id, ref_answer, _error = found
        seed = pw.order_seed(
            run_id=run.pk, case_key=r.case.key, sample=r.sample, arm_id=r.arm_id, reference_arm_id=ref.arm_id
        )
        scored_first = pw.scored_shown_first(seed, order)
        first, second = (r.answer, ref_answer) if scored_first else (ref_answer, r.answer)
        rubric = c.assertion.get("rubric")
        c.request = (
            input_text(r.case.input),
            first,
            second,
            rubric.strip() if isinstance(rubric, str) else "",
            tuple(r.case.expected_list),
        )
        c.details = details | {
            "reference_result": ref_id,
            "seed": seed,
            "order": order,
            "shown_first": "scored" if scored_first else "reference",
        }
    todo = [c for c in checks if c.request is not None]
    if not todo:
        return 0
    if endpoint is None:
        for c in todo:
            c.verdict = _skipped("skipped: no judge endpoint is configured (FTVP_JUDGE_ENDPOINT)")
        return 0
    judge = PairJudge(endpoint)
    try:
        judge.prepare([c.request for c in todo])
    except Exception as exc:  # e.g. the judge's provider cannot start: each check fails, visibly
        why = redactor()(str(exc))[:120] or type(exc).__name__
        for c in todo:
            c.verdict = assertions.Verdict(0.0, False, f"judge failed: {why}")
            c.details["error"] = why
        return len(todo)
    for c in todo:
        try:
            raw = judge(c.request)
        except Exception as exc:
            why = str(exc)[:120] or type(exc).__name__
            c.verdict = assertions.Verdict(0.0, False, f"judge failed: {why}")
            c.details["error"] = why
            continue
        c.details["raw"] = raw[:RAW_LIMIT]
        try:
            choice = pw.parse_choice(raw)
        except ValueError as exc:
            c.verdict = assertions.Verdict(0.0, False, f"judge failed: {str(exc)[:120]}")
            c.details["error"] = str(exc)[:200]
            continue
        result = pw.outcome(choice, c.details["shown_first"] == "scored")
        threshold = assertions._to_float(c.assertion.get("threshold"))
        score, passed, reason = pw.verdict(result, threshold=threshold, reference=c.reference.label)
        c.details |= {"choice": choice, "outcome": result}
        c.verdict = assertions.Verdict(score, passed, reason)
    return len(todo)


def _skipped(reason: str) -> assertions.Verdict:
    return assertions.Verdict(0.0, True, reason, skipped=True)


def _recombine(r: Result, listed: list[dict], checks: list[_Check]) -> bool:
    """Write the result's judged checks into its scores and combine them again; False if untouched."""
    mine = {c.index: c for c in checks if c.result is r and c.verdict is not None}
    scores = dict(r.scores or {})
    entries = [dict(e) for e in scores.get("assertions") or []]
    if len(entries) != len(listed):  # scored with other assertions than these: nothing to splice into
        scores.pop("pairwise_pending", None)
        r.scores = scores
        return True
    for i, c in mine.items():
        v = c.verdict
        entry = {"type": c.assertion["type"], "score": round(v.score, 6), "passed": v.passed}
        entry["reason"] = v.reason
        entries[i] = entry | ({"skipped": True} if v.skipped else {}) | {"pairwise": c.details}
    still_pending = any(e.get("pending") for e in entries)
    if not mine and still_pending:
        return False
    scores.pop("pairwise_pending", None)
    verdicts = [
        assertions.Verdict(
            float(e.get("score") or 0.0),
            bool(e.get("passed")),
            str(e.get("reason", "")),
            skipped=bool(e.get("skipped")),
        )
        for e in entries
    ]
    total = assertions.combine(listed, verdicts)
    scores["assertions"], scores["reason"] = entries, total.reason
    if total.skipped:
        r.score, r.passed = None, None
    else:
        r.score, r.passed = round(total.score, 6), total.passed
    if still_pending:
        scores["pairwise_pending"] = True
    r.scores = scores
    r.scored_at = timezone.now()
    return True
