"""What a fine-tuning job trains on: its training source, read into examples (docs/finetuning.md,
"Training sources").

A source is one of, or several joined by "," (a union, duplicate inputs removed, the first source
listed keeping its answer):

- `train`: the suite version's train split, its first acceptable expected output as the target;
- `run:RUN:ARM` (`run:RUN:ARM:all`): a labelling run's answers (a teacher endpoint + strategy run
  on the train split) as the targets: only those that passed scoring (the default), or all answered
  ones; a reviewer's verdict, where there is one, wins (incorrect: left out; corrected: the
  correction is the target; correct: kept even when the scorer failed it);
- `reviewed:RUN`: only what reviewers accepted (correct) or corrected in a labelling run.

Whatever the source, the student sees the case's input as the `plain` strategy sends it (the prompt
it is evaluated with): no instructions, no demonstrations. The leakage guard (services/finetune.py)
checks every source's inputs against the test split of the version the student is evaluated on."""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass, field

from django.db.models import Sum

from evaluations import strategies
from evaluations.models import (
    Arm,
    Endpoint,
    Result,
    Review,
    Run,
    RunStatus,
    Split,
    Strategy,
    SuiteVersion,
    SyntheticGeneration,
    Trigger,
)

KINDS = ("train", "run", "reviewed")
OUTPUTS = ("passing", "all")
LABELLED = ("correct", "incorrect", "corrected")
SAMPLE = 3  # examples shown on the job page and in its JSON
GRAMMAR = "train | run:RUN:ARM[:all] | reviewed:RUN, or several joined by ',' (a union)"


class TrainingSourceError(ValueError):
    pass


@dataclass(frozen=True)
class SourcePart:
    kind: str
    run_id: int | None = None
    arm: str | None = None  # an arm's id, or its endpoint's name when that names one arm of the run
    outputs: str = "passing"

    @property
    def spec(self) -> str:
        if self.kind == "train":
            return "train"
        if self.kind == "reviewed":
            return f"reviewed:{self.run_id}"
        return f"run:{self.run_id}:{self.arm}" + (":all" if self.outputs == "all" else "")


def parse_source(spec: str | None) -> list[SourcePart]:
    """The parts of a source spec (empty: `train`); TrainingSourceError says what is wrong."""
    text = (spec or "").strip() or "train"
    parts: list[SourcePart] = []
    for raw in text.split(","):
        item = raw.strip()
        bits = [b.strip() for b in item.split(":")]
        kind = bits[0].lower()
        if kind == "train" and len(bits) == 1:
            part = SourcePart("train")
        elif kind == "reviewed" and len(bits) == 2:
            part = SourcePart("reviewed", run_id=_run_id(bits[1], item))
        elif kind == "run" and len(bits) in (3, 4):
            outputs = bits[3].lower() if len(bits) == 4 else "passing"
            if outputs not in OUTPUTS:
                raise TrainingSourceError(
                    f"source {item!r}: the last part is 'all' or 'passing', not {bits[3]!r}"
                )
            if not bits[2]:
                raise TrainingSourceError(f"source {item!r}: name the arm (its id, or its endpoint's name)")
            part = SourcePart("run", run_id=_run_id(bits[1], item), arm=bits[2], outputs=outputs)
        else:
            raise TrainingSourceError(f"source {item!r} is not one of: {GRAMMAR}")
        if part in parts:
            raise TrainingSourceError(f"source {item!r} is listed twice")
        parts.append(part)
    return parts


def _run_id(text: str, item: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise TrainingSourceError(f"source {item!r}: {text!r} is not a run id")
    return int(text)


@dataclass
class Row:
    key: str  # the case key
    input: object
    messages: list[dict]  # the student's prompt (`plain`)
    answer: str
    origin: str  # the source part's spec
    synthetic: int | None = None  # the synthetic generation that wrote the case, if one did


@dataclass
class TrainingSet:
    spec: str
    rows: list[Row]
    parts: list[dict]  # per part: spec, kind, examples (before the union), label, cost
    duplicates: int = 0  # inputs given by more than one part, kept once
    data_cost: float | None = None  # labelling (the teacher's calls) + synthetic generation, USD
    generation_cost: float = 0.0  # of which the generations that wrote the examples' cases
    teacher: tuple[Endpoint, Strategy] | None = None
    notes: list[str] = field(default_factory=list)

    def describe(self) -> dict:
        """What the job stores and shows: the source, the count and a sample."""
        return {
            "spec": self.spec,
            "parts": self.parts,
            "examples": len(self.rows),
            "duplicates": self.duplicates,
            "data_cost": self.data_cost,
            "generation_cost": self.generation_cost,
            "teacher": None if self.teacher is None else f"{self.teacher[0].name} · {self.teacher[1]}",
            "sample": [
                {
                    "key": r.key,
                    "input": _short(strategies.input_text(r.input)),
                    "answer": _short(r.answer),
                    "from": r.origin,
                }
                for r in self.rows[:SAMPLE]
            ],
            "notes": self.notes,
        }


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _answer_text(value: object) -> str | None:
    answer = value[0] if isinstance(value, list) and value else value
    if isinstance(answer, dict | list):  # a JSON suite's expected object
        answer = json.dumps(answer, ensure_ascii=False, sort_keys=True)
    if answer is None or not str(answer).strip():
        return None
    return str(answer)


def _ctx(version: SuiteVersion) -> strategies.RenderContext:
    return strategies.RenderContext(task_type=version.task_type, labels=tuple(version.labels))


def train_split_rows(version: SuiteVersion) -> list[Row]:
    """The train split's cases with an expected output, in order (source `train`)."""
    ctx = _ctx(version)
    rows = []
    cases = version.cases.filter(split=Split.TRAIN).order_by("position")
    for key, case_input, expected, metadata in cases.values_list("key", "input", "expected", "metadata"):
        answer = _answer_text(expected)
        if answer is not None:
            messages = strategies.render("plain", case_input, ctx)
            rows.append(Row(key, case_input, messages, answer, "train", _generation_of(metadata)))
    return rows


def _generation_of(metadata: object) -> int | None:
    """The synthetic generation a case came from (services/synthetic.py marks its cases)."""
    mark = metadata.get("synthetic") if isinstance(metadata, dict) else None
    generation = mark.get("generation") if isinstance(mark, dict) else None
    return generation if isinstance(generation, int) and not isinstance(generation, bool) else None


def _latest_verdicts(run: Run, arm_ids: list[int]) -> dict[int, tuple[str, str]]:
    """{result id: (verdict, corrected output)}: each result's latest labelled review, by anyone."""
    verdicts: dict[int, tuple[str, str]] = {}
    rows = (
        Review.objects.filter(run=run, result__arm_id__in=arm_ids, verdict__in=LABELLED)
        .order_by("result_id", "-updated_at", "-pk")
        .values_list("result_id", "verdict", "corrected_output")
    )
    for result_id, verdict, corrected in rows.iterator(chunk_size=5000):
        verdicts.setdefault(result_id, (verdict, corrected))
    return verdicts


def _suite_run(version: SuiteVersion, run_id: int, spec: str) -> Run:
    run = Run.objects.select_related("suite_version").filter(pk=run_id).first()
    if run is None or run.suite_version.suite_id != version.suite_id:
        raise TrainingSourceError(
            f"source {spec!r}: run #{run_id} is not a run of suite {version.suite.name!r}"
        )
    if run.status != RunStatus.SUCCEEDED:
        raise TrainingSourceError(
            f"source {spec!r}: run #{run_id} is {run.status}; only a finished run's answers can train"
        )
    return run


def _labelling_only(run: Run, part: SourcePart) -> None:
    """A run's answers train only when it answered the train split (a labelling run): a test run's
    answers would teach the student the cases it is scored on (also those of an older version)."""
    if run.split != Split.TRAIN:
        raise TrainingSourceError(
            f"source {part.spec!r}: run #{run.pk} answered the test split; its answers would teach the "
            "student the cases it is scored on. Start a labelling run of the train split with the "
            'teacher (`manage.py evaluate --split train`, the API\'s "split": "train")'
        )


def _arm_of(run: Run, name: str, spec: str) -> Arm:
    arms = list(run.arms.select_related("endpoint", "strategy"))
    if name.isdigit():
        found = [a for a in arms if a.pk == int(name)]
    else:
        found = [a for a in arms if a.endpoint.name == name]
        if len(found) > 1:
            ids = ", ".join(f"{a.pk} ({a.label})" for a in found)
            raise TrainingSourceError(
                f"source {spec!r}: {name!r} names {len(found)} arms of run #{run.pk}: {ids}; give its id"
            )
    if not found:
        known = ", ".join(f"{a.pk} ({a.label})" for a in arms)
        raise TrainingSourceError(f"source {spec!r}: run #{run.pk} has no arm {name!r} (its arms: {known})")
    return found[0]


def _arm_cost(arm_ids: list[int]) -> float:
    """What the arms' calls cost: a teacher's labelling. Captured production answers cost the
    training data nothing more (production paid for them anyway)."""
    results = Result.objects.filter(arm_id__in=arm_ids).exclude(arm__run__trigger=Trigger.CAPTURE)
    return float(results.aggregate(c=Sum("cost"))["c"] or 0.0)


def run_rows(version: SuiteVersion, part: SourcePart) -> tuple[list[Row], Arm, float]:
    """A labelling run's answers (source `run:RUN:ARM`), one per case: its first sample that qualifies.
    Returns the rows, the arm (the teacher) and what the arm's calls cost."""
    run = _suite_run(version, part.run_id, part.spec)
    _labelling_only(run, part)
    arm = _arm_of(run, part.arm, part.spec)
    verdicts = _latest_verdicts(run, [arm.pk])
    ctx = _ctx(version)
    results = (
        Result.objects.filter(arm=arm, error="")
        .order_by("case__position", "sample")
        .values_list("pk", "case__key", "case__input", "answer", "passed", "case__metadata")
    )
    rows: list[Row] = []
    seen: set[str] = set()
    for pk, key, case_input, answer, passed, metadata in results.iterator(chunk_size=2000):
        if key in seen:
            continue
        verdict, corrected = verdicts.get(pk, (None, ""))
        if verdict == "incorrect":
            continue
        if verdict == "corrected":
            target = corrected
        elif verdict == "correct" or part.outputs == "all" or passed:
            target = answer  # what was scored: a chain-of-thought's final answer, not its reasoning
        else:
            continue
        if not target or not target.strip():
            continue
        seen.add(key)
        messages = strategies.render("plain", case_input, ctx)
        rows.append(Row(key, case_input, messages, target, part.spec, _generation_of(metadata)))
    return rows, arm, _arm_cost([arm.pk])


def reviewed_rows(version: SuiteVersion, part: SourcePart) -> tuple[list[Row], list[Arm], float]:
    """What reviewers accepted or corrected in a run (source `reviewed:RUN`), one per case."""
    run = _suite_run(version, part.run_id, part.spec)
    _labelling_only(run, part)
    arms = {a.pk: a for a in run.arms.select_related("endpoint", "strategy")}
    verdicts = _latest_verdicts(run, list(arms))
    ctx = _ctx(version)
    kept = [pk for pk, (verdict, _) in verdicts.items() if verdict in ("correct", "corrected")]
    results = (
        Result.objects.filter(pk__in=kept)
        .order_by("case__position", "arm__position", "sample")
        .values_list("pk", "arm_id", "case__key", "case__input", "answer", "case__metadata")
    )
    rows: list[Row] = []
    used: set[int] = set()
    seen: set[str] = set()
    for pk, arm_id, key, case_input, answer, metadata in results.iterator(chunk_size=2000):
        if key in seen:
            continue
        verdict, corrected = verdicts[pk]
        target = corrected if verdict == "corrected" else answer
        if not target or not target.strip():
            continue
        seen.add(key)
        used.add(arm_id)
        messages = strategies.render("plain", case_input, ctx)
        rows.append(Row(key, case_input, messages, target, part.spec, _generation_of(metadata)))
    teachers = [arms[a] for a in sorted(used)]
    return rows, teachers, _arm_cost(sorted(used))


def normalised_input(case_input: object) -> str:
    """A case's input as the guard and the union compare it: the messages' texts (a string input as
    it is), Unicode NFKC, case-folded, invisible format characters (zero-width spaces, soft hyphens)
    dropped, every run of whitespace one space."""
    if isinstance(case_input, list):
        text = "\n".join(
            f"{m.get('role', '')}: {_content_text(m.get('content'))}" if isinstance(m, dict) else str(m)
            for m in case_input
        )
        # A one-message user conversation is the same input as that message's text.
        if len(case_input) == 1 and isinstance(case_input[0], dict) and case_input[0].get("role") == "user":
            text = _content_text(case_input[0].get("content"))
    elif isinstance(case_input, dict):
        text = json.dumps(case_input, ensure_ascii=False, sort_keys=True)
    else:
        text = "" if case_input is None else str(case_input)
    text = "".join(c for c in unicodedata.normalize("NFKC", text) if unicodedata.category(c) != "Cf")
    return " ".join(text.casefold().split())


def _content_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else json.dumps(content, ensure_ascii=False, sort_keys=True)


def generation_cost(rows: list[Row]) -> float:
    """What the synthetic generations that wrote the examples' cases cost (USD), each once, however
    many of its cases are used (the generation was paid in full); carried over versions."""
    ids = {r.synthetic for r in rows if r.synthetic is not None}
    if not ids:
        return 0.0
    return float(SyntheticGeneration.objects.filter(pk__in=ids).aggregate(c=Sum("cost"))["c"] or 0.0)


def training_set(version: SuiteVersion, spec: str | None = None) -> TrainingSet:
    """The examples of the source `spec` (see the module's docstring) for a job on `version`."""
    parts = parse_source(spec)
    rows: list[Row] = []
    described: list[dict] = []
    by_input: dict[str, str] = {}
    duplicates = 0
    cost = 0.0
    costed_arms: set[int] = set()
    teacher: tuple[Endpoint, Strategy] | None = None
    for part in parts:
        if part.kind == "train":
            got = train_split_rows(version)
            part_cost = 0.0
            label = f"the train split of {version}"
        elif part.kind == "run":
            got, arm, arm_cost = run_rows(version, part)
            part_cost = 0.0 if arm.pk in costed_arms else arm_cost
            costed_arms.add(arm.pk)
            teacher = teacher or (arm.endpoint, arm.strategy)
            which = "all answers" if part.outputs == "all" else "passing answers"
            label = f"{arm.label}'s {which} in labelling run #{part.run_id}"
        else:
            got, arms, arm_cost = reviewed_rows(version, part)
            fresh = [a.pk for a in arms if a.pk not in costed_arms]
            part_cost = _arm_cost(fresh) if fresh else 0.0
            costed_arms.update(a.pk for a in arms)
            if len(arms) == 1:  # one arm of a labelling run: that is the teacher
                teacher = teacher or (arms[0].endpoint, arms[0].strategy)
            label = f"reviewed answers of run #{part.run_id}"
        cost += part_cost
        kept = 0
        for row in got:
            norm = normalised_input(row.input)
            if norm in by_input:
                duplicates += 1
                continue
            by_input[norm] = row.key
            rows.append(row)
            kept += 1
        described.append(
            {"spec": part.spec, "kind": part.kind, "label": label, "examples": len(got), "kept": kept,
             "cost": round(part_cost, 6)}
        )  # fmt: skip
    generated = generation_cost(rows)
    cost += generated
    return TrainingSet(
        spec=",".join(p.spec for p in parts),
        rows=rows,
        parts=described,
        duplicates=duplicates,
        data_cost=round(cost, 6) if cost else 0.0,
        generation_cost=round(generated, 6),
        teacher=teacher,
    )
