"""Captured traffic into a suite (docs/traffic.md): sample chat calls, deduplicate, split, and store
them as the suite's next version, with the captured answers as a labelling run to review.

- Sample: the calls matching the filters (chat calls that succeeded, with messages and an answer,
  to a registered endpoint), ordered by SHA-256 of `seed:call_id`, walked in that order until
  `sample_size` distinct inputs are taken. The same filters and seed give the same sample.
- Deduplicate: by the normalised input (selectors/training_data.normalised_input), against the
  sample and against the cases the suite's latest version already holds.
- Split: by SHA-256 of the normalised input, not by the seed: an input lands in the test split when
  the hash's fraction is below `test_share`, whatever the seed or the sample size, so re-sampling
  never moves an input from train to test. Case keys are derived from the same hash.
- The cases: input = the call's messages (the system message kept), no expected output, the captured
  answer in `metadata["captured"]` = {call_id, endpoint, output}, the call's tags and "traffic".
- The captured run: a finished labelling run (split train) on the new version with one arm per live
  endpoint (strategy `plain`) whose results are the captured answers (tokens, latency, cost of the
  call). Nothing is generated nor scored: with no expected output there is nothing to score against,
  so every result stays unscored (`passed` None) and goes to the run's review queue. Reviewed answers
  train with `reviewed:RUN`; every captured answer with `run:RUN:ARM:all` (docs/finetuning.md).

Everything (suite, version, cases, run, arms, results, audit event) is written in one transaction.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from evaluations.models import (
    Arm,
    Case,
    Endpoint,
    Result,
    Review,
    Run,
    RunStatus,
    Split,
    Strategy,
    StrategyKind,
    Suite,
    SuiteVersion,
    TaskType,
    TrafficCall,
    TrafficKind,
    Trigger,
)
from evaluations.selectors.traffic import TrafficFilter, call_messages, call_output, traffic_calls
from evaluations.selectors.training_data import normalised_input
from evaluations.services.audit import audit_record
from evaluations.services.knowledge import CASES_NOTE, carried_notes, cases_copy, knowledge_store
from evaluations.services.scorings import scoring_create, scoring_finish

MAX_SAMPLE = 10_000
CHUNK = 500  # calls read at a time while walking the seeded order
TRAFFIC_TAG = "traffic"


class TrafficSuiteError(ValueError):
    """Traffic cannot become a suite as asked; the message names the field and what to do."""


@dataclass
class TrafficSuiteOutcome:
    suite: Suite
    version: SuiteVersion
    run: Run | None  # the captured labelling run (None when no sampled input landed in train)
    matched: int  # calls matching the filters
    sampled: int  # distinct inputs taken (the new cases)
    train: int
    test: int
    duplicates: int  # calls skipped: their input was already sampled or already in the suite
    skipped: int  # calls walked without messages or an answer
    call_ids: list[str] = field(default_factory=list)
    test_run: Run | None = None  # the captured answers of the test cases, to review (never evidence)

    def as_dict(self) -> dict:
        return {
            "suite": {"id": self.suite.pk, "name": self.suite.name},
            "suite_version": self.version.number,
            "run": None if self.run is None else self.run.pk,
            "test_run": None if self.test_run is None else self.test_run.pk,
            "arms": [] if self.run is None else [
                {"id": a.pk, "endpoint": a.endpoint.name} for a in self.run.arms.select_related("endpoint")
            ],
            "matched": self.matched,
            "sampled": self.sampled,
            "train": self.train,
            "test": self.test,
            "duplicates": self.duplicates,
            "skipped": self.skipped,
        }  # fmt: skip


def sample_order(seed: object, call_id: str) -> str:
    """The seeded order of a call: SHA-256 of "seed:call_id"."""
    return hashlib.sha256(f"{seed}:{call_id}".encode()).hexdigest()


def input_hash(normalised: str) -> str:
    return hashlib.sha256(normalised.encode()).hexdigest()


def split_of(normalised: str, test_share: float) -> str:
    """test or train, from the input alone: the first 52 bits of its hash as a fraction of 1."""
    fraction = int(input_hash(normalised)[:13], 16) / float(16**13)
    return Split.TEST if fraction < test_share else Split.TRAIN


def _plain_strategy() -> Strategy:
    found = Strategy.objects.filter(name="plain", kind=StrategyKind.PLAIN).order_by("version").first()
    if found is None:
        raise TrafficSuiteError("the built-in strategy `plain` is missing: run `manage.py migrate`")
    return found


def _case_messages(messages: list[dict]) -> list[dict]:
    """The messages as a case's input: role and content of each, in order."""
    return [{"role": str(m.get("role")), "content": m.get("content")} for m in messages]


def _check(sample_size, test_share, seed) -> None:
    if (
        isinstance(sample_size, bool)
        or not isinstance(sample_size, int)
        or not 1 <= sample_size <= MAX_SAMPLE
    ):
        raise TrafficSuiteError(f"sample_size: a whole number from 1 to {MAX_SAMPLE:,}")
    if isinstance(test_share, bool) or not isinstance(test_share, int | float) or not 0 <= test_share <= 1:
        raise TrafficSuiteError("test_share: the share of inputs in the test split, from 0 to 1 (e.g. 0.2)")
    if len(str(seed)) > 100:
        raise TrafficSuiteError("seed: at most 100 characters")


def _target(suite: Suite | None, suite_name: str | None, user) -> tuple[Suite, SuiteVersion | None]:
    if suite is None:
        name = (suite_name or "").strip()
        if not name:
            raise TrafficSuiteError(
                "suite: name the suite to add the cases to (a new name makes a new suite)"
            )
        if len(name) > 200:
            raise TrafficSuiteError("suite: at most 200 characters")
        suite, _ = Suite.objects.select_for_update().get_or_create(
            name=name,
            defaults={
                "task_type": TaskType.GENERATION,
                "owner": user,
                "description": "Cases from captured traffic.",
            },
        )
    else:
        suite = Suite.objects.select_for_update().get(pk=suite.pk)
    if suite.task_type != TaskType.GENERATION:
        raise TrafficSuiteError(
            f"suite: {suite.name!r} is a {suite.task_type} suite; captured calls have no label nor "
            "schema to check, so they go into a generation suite (give a new name)"
        )
    return suite, suite.versions.order_by("-number").first()


def traffic_to_suite(
    *,
    suite_name: str | None = None,
    suite: Suite | None = None,
    filters: TrafficFilter | None = None,
    sample_size: int = 100,
    seed: int | str = 0,
    test_share: float = 0.2,
    user=None,
    trigger: str = Trigger.MANUAL,
) -> TrafficSuiteOutcome:
    """Sample captured chat calls into the suite's next version and a captured labelling run (see the
    module's docstring). All or nothing."""
    _check(sample_size, test_share, seed)
    wanted = replace(filters or TrafficFilter(), kind=TrafficKind.CHAT, status="ok")
    actor = user if getattr(user, "is_authenticated", False) else None
    with transaction.atomic():
        target, latest = _target(suite, suite_name, actor)
        matching = traffic_calls(wanted).filter(endpoint__isnull=False)
        ids = list(matching.order_by().values_list("pk", "call_id"))
        if not ids:
            raise TrafficSuiteError(
                f"no successful chat call to a registered endpoint matches {wanted.as_dict()}; "
                "widen the filters"
            )
        ids.sort(key=lambda row: sample_order(seed, row[1]))
        existing = (
            {
                normalised_input(i)
                for i in latest.cases.values_list("input", flat=True).iterator(chunk_size=2000)
            }
            if latest is not None
            else set()
        )
        taken: dict[str, tuple] = {}  # normalised input -> (call, messages, output)
        duplicates = skipped = 0
        for start in range(0, len(ids), CHUNK):
            chunk = [pk for pk, _ in ids[start : start + CHUNK]]
            calls = {c.pk: c for c in TrafficCall.objects.select_related("endpoint").filter(pk__in=chunk)}
            for pk in chunk:
                call = calls[pk]
                messages, output = call_messages(call), call_output(call)
                if messages is None or output is None or not output.strip():
                    skipped += 1
                    continue
                norm = normalised_input(_case_messages(messages))
                if norm in taken or norm in existing:
                    duplicates += 1
                    continue
                taken[norm] = (call, _case_messages(messages), output)
                if len(taken) >= sample_size:
                    break
            if len(taken) >= sample_size:
                break
        if not taken:
            raise TrafficSuiteError(
                f"the {len(ids):,} matching calls give no new input ({duplicates:,} already in the suite or "
                f"repeated, {skipped:,} without messages or an answer)"
            )
        version = _new_version(target, latest, actor)
        cases, counts = _add_cases(version, latest, taken, test_share)
        run = _captured_run(version, cases, taken, actor, trigger)
        test_run = _captured_run(version, cases, taken, actor, trigger, split=Split.TEST)
        audit_record(
            actor=actor,
            action="traffic.to_suite",
            obj=version,
            suite_id=target.pk,
            after={
                "suite": target.name,
                "version": version.number,
                "filters": wanted.as_dict(),
                "seed": str(seed),
                "sample_size": sample_size,
                "test_share": test_share,
                "added": len(cases),
                "train": counts[Split.TRAIN],
                "test": counts[Split.TEST],
                "duplicates": duplicates,
                "run": None if run is None else run.pk,
                "test_run": None if test_run is None else test_run.pk,
            },
        )
    return TrafficSuiteOutcome(
        suite=target,
        version=version,
        run=run,
        test_run=test_run,
        matched=len(ids),
        sampled=len(cases),
        train=counts[Split.TRAIN],
        test=counts[Split.TEST],
        duplicates=duplicates,
        skipped=skipped,
        call_ids=[call.call_id for call, _, _ in taken.values()],
    )


def _new_version(suite: Suite, latest: SuiteVersion | None, user) -> SuiteVersion:
    number = (suite.versions.aggregate(n=Max("number"))["n"] or 0) + 1
    version = SuiteVersion.objects.create(
        suite=suite,
        number=number,
        source_name="captured traffic",
        source_format="traffic",
        task_type=suite.task_type,
        labels=[],
        default_assertions=latest.default_assertions if latest is not None else [],
        notes=carried_notes(latest) if latest is not None else [],
        created_by=user,
    )
    if latest is not None:
        cases_copy(source=latest, target=version)
        knowledge_store(version=version, source=latest)
    return version


def _add_cases(
    version: SuiteVersion, latest: SuiteVersion | None, taken: dict[str, tuple], test_share: float
) -> tuple[list[Case], dict[str, int]]:
    keys = set(latest.cases.values_list("key", flat=True)) if latest is not None else set()
    position = (version.cases.aggregate(m=Max("position"))["m"] or -1) + 1
    counts = {Split.TRAIN: 0, Split.TEST: 0}
    rows = []
    for norm, (call, messages, output) in taken.items():
        key = f"traffic-{input_hash(norm)[:12]}"
        while key in keys:
            key += "-x"
        keys.add(key)
        split = split_of(norm, test_share)
        counts[split] += 1
        tags = [str(t) for t in call.tags] if isinstance(call.tags, list) else []
        rows.append(
            Case(
                version=version,
                key=key,
                position=position,
                input=messages,
                expected=None,  # an answer becomes expected only after review
                split=split,
                tags=list(dict.fromkeys([*tags, TRAFFIC_TAG])),
                metadata={
                    "captured": {"call_id": call.call_id, "endpoint": call.endpoint_name, "output": output}
                },
            )
        )
        position += 1
    cases = Case.objects.bulk_create(rows)
    copied = version.cases.count() - len(cases)
    note = f"{CASES_NOTE}{len(cases):,} case(s) from captured traffic ({counts[Split.TRAIN]:,} train, "
    note += f"{counts[Split.TEST]:,} test)"
    note += f", after the {copied:,} cases of v{latest.number}, unchanged." if latest is not None else "."
    version.notes = [*version.notes, note]
    version.save(update_fields=["notes"])
    if not cases or cases[0].pk is None:  # a backend that does not return ids from bulk_create
        cases = list(version.cases.filter(key__in=[c.key for c in rows]))
    return cases, counts


def _captured_run(
    version: SuiteVersion, cases: list[Case], taken: dict[str, tuple], user, trigger: str, split=Split.TRAIN
) -> Run | None:
    """A finished run (trigger `capture`) whose results are the captured answers of the `split`'s
    cases: in the review queue; the train one a training source (run:RUN:ARM:all, reviewed:RUN), both
    turned into expected outputs once reviewed (`captured_answers_apply`). Never a decision's run."""
    train = [c for c in cases if c.split == split]
    if not train:
        return None
    by_key = {f"traffic-{input_hash(norm)[:12]}": value for norm, value in taken.items()}
    calls = {c.pk: by_key[c.key[:20]] for c in train}  # "traffic-" + 12: the key before any "-x"
    endpoints: dict[int, Endpoint] = {}
    for call, _, _ in calls.values():
        endpoints.setdefault(call.endpoint_id, call.endpoint)
    now = timezone.now()
    run = Run.objects.create(
        suite_version=version,
        status=RunStatus.SUCCEEDED,
        trigger=Trigger.CAPTURE,
        repeats=1,
        split=split,
        use_cache=False,
        created_by=user,
        expected_results=len(train),
        started_at=now,
        finished_at=now,
    )
    plain = _plain_strategy()
    arms = {
        endpoint_id: Arm.objects.create(run=run, endpoint=endpoint, strategy=plain, position=i)
        for i, (endpoint_id, endpoint) in enumerate(sorted(endpoints.items(), key=lambda kv: kv[1].name))
    }
    Result.objects.bulk_create(
        [
            Result(
                arm=arms[call.endpoint_id],
                case=case,
                sample=0,
                prompt=messages,
                output=output,
                answer=output,
                prompt_tokens=call.prompt_tokens,
                completion_tokens=call.completion_tokens,
                latency_ms=call.latency_ms,
                cost=call.cost or 0.0,
            )
            for case in train
            for call, messages, output in [calls[case.pk]]
        ]
    )
    # The scoring records what the results were (not) scored with; its summaries are the arms'.
    scoring_finish(scoring=scoring_create(run=run, user=user))
    audit_record(
        actor=user,
        action="run.create",
        obj=run,
        suite_id=version.suite_id,
        after={
            "suite_version": version.number,
            "trigger": Trigger.CAPTURE,
            "started_by": trigger,
            "arms": [f"{a.endpoint.name} · {plain}" for a in arms.values()],
            "split": split,
            "captured": len(train),
        },
    )
    return run


@transaction.atomic
def captured_answers_apply(*, version: SuiteVersion, user=None) -> SuiteVersion:
    """The suite's next version: `version`'s cases, each captured answer a reviewer accepted (correct)
    or corrected in the version's captured runs becoming its case's expected output ("outputs land
    as expected values only after review"); cases without such a review are copied unchanged, with
    their knowledge documents. TrafficSuiteError when nothing was reviewed."""
    runs = list(version.runs.filter(trigger=Trigger.CAPTURE).values_list("pk", flat=True))
    if not runs:
        raise TrafficSuiteError(f"{version} has no captured answers (make it from traffic first)")
    reviews = (
        Review.objects.filter(run_id__in=runs, verdict__in=("correct", "incorrect", "corrected"))
        .order_by("result_id", "-updated_at", "-pk")
        .values_list("result_id", "result__case_id", "verdict", "corrected_output", "result__answer")
    )
    expected: dict[int, str] = {}
    seen: set[int] = set()
    for result_id, case_id, verdict, corrected, answer in reviews.iterator(chunk_size=2000):
        if result_id in seen:
            continue  # an older review of the same result: the latest verdict counts
        seen.add(result_id)
        if verdict == "corrected":
            expected[case_id] = corrected
        elif verdict == "correct" and answer:
            expected[case_id] = answer
    if not expected:
        raise TrafficSuiteError(
            f"no captured answer of {version} was accepted or corrected yet: review them (the captured "
            "runs' review queues), then apply"
        )
    suite = Suite.objects.select_for_update().get(pk=version.suite_id)
    latest = suite.versions.order_by("-number").first()
    if latest.pk != version.pk:
        raise TrafficSuiteError(
            f"v{version.number} is not the suite's latest version (v{latest.number}): a version built on it "
            f"would drop v{latest.number}'s changes"
        )
    target = _new_version(suite, version, user)  # the cases and knowledge of `version`, copied
    target.source_name = f"reviewed answers of v{version.number}"
    target.save(update_fields=["source_name"])
    by_key = dict(version.cases.filter(pk__in=list(expected)).values_list("pk", "key"))
    rows = list(target.cases.filter(key__in=list(by_key.values())))
    answers = {by_key[case_id]: text for case_id, text in expected.items()}
    for case in rows:
        case.expected = answers[case.key]
    Case.objects.bulk_update(rows, ["expected"], batch_size=1000)
    target.notes = [*carried_notes(version), f"{CASES_NOTE}the cases of v{version.number}, {len(rows):,} of "
                    "them with their reviewed captured answer as the expected output."]  # fmt: skip
    target.save(update_fields=["notes"])
    audit_record(
        actor=user,
        action="traffic.answers_applied",
        obj=target,
        suite_id=suite.pk,
        after={"from_version": version.number, "version": target.number, "expected": len(rows)},
    )
    return target
