"""Reads for the compare page: two or more arms side by side on the cases they share.

Arms may come from one run or from several runs of the same suite; cases are matched by key.

A comparison reads the arms' results in one query whatever the number of arms and cases, as narrow
rows (no case inputs or expected outputs), and keeps them column by column (a few lists per arm, not
objects per case); rows and cells are made for the page shown only, as are the cases' inputs and
expected outputs (`add_cases`). The paired statistics are cached by the figures they are computed
from: they are deterministic, and a bootstrap over thousands of cases costs tens of milliseconds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.core.cache import cache

from evaluations.analysis.compare import compare_passes, compare_scores
from evaluations.analysis.textdiff import word_diff
from evaluations.models import Arm, Case, Result, expected_as_list

STATS_CACHE_SECONDS = 3600


class CompareError(ValueError):
    pass


@dataclass
class Cell:
    output: str = ""
    error: str = ""
    score: float | None = None
    passed: bool | None = None
    samples: int = 0
    disagree: bool = False
    delta: float | None = None
    flipped: bool = False
    diff: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Row:
    key: str
    cells: list[Cell]
    input: object = None  # the case's, and its expected outputs: set by `add_cases` for a shown row
    expected: list[str] = field(default_factory=list)


class _ArmCases:
    """One arm's results by case, column by column in case order: per case the first sample's
    output, error and answer, the other samples' answers, and the sums behind its mean score and its
    pass (all judged samples pass)."""

    __slots__ = ("answer", "error", "index", "judged", "more", "output", "passed_all", "score_sum", "scored")

    def __init__(self) -> None:
        self.index: dict[str, int] = {}  # case key -> column position
        self.output: list[str] = []
        self.error: list[str] = []
        self.answer: list[str] = []
        self.more: dict[int, list[str]] = {}  # the other samples' answers, for cases with several
        self.score_sum: list[float] = []
        self.scored: list[int] = []
        self.passed_all: list[bool] = []
        self.judged: list[int] = []

    def add(self, key: str, output: str, answer: str, error: str, score, passed) -> None:
        i = self.index.get(key)
        if i is None:
            i = self.index[key] = len(self.output)
            self.output.append(output)
            self.error.append(error)
            self.answer.append(answer or output or error)
            self.score_sum.append(0)
            self.scored.append(0)
            self.passed_all.append(True)
            self.judged.append(0)
        else:
            self.more.setdefault(i, []).append(answer or output or error)
        if score is not None:
            self.score_sum[i] += score
            self.scored[i] += 1
        if passed is not None:
            self.passed_all[i] = self.passed_all[i] and passed
            self.judged[i] += 1

    def score(self, i: int) -> float | None:
        """The mean of the case's sample scores."""
        return self.score_sum[i] / self.scored[i] if self.scored[i] else None

    def passed(self, i: int) -> bool | None:
        return self.passed_all[i] if self.judged[i] else None

    def disagree(self, i: int) -> bool:
        """Whether the case's samples answered differently (case and spacing aside)."""
        more = self.more.get(i)
        if not more:
            return False
        return len({" ".join(a.casefold().split()) for a in (self.answer[i], *more)}) > 1

    def scores(self) -> dict[str, float]:
        """Each case's score: the mean of its samples."""
        return {k: self.score(i) for k, i in self.index.items() if self.scored[i]}

    def passes(self) -> dict[str, bool]:
        """Each case passes when all its samples pass."""
        return {k: self.passed_all[i] for k, i in self.index.items() if self.judged[i]}


class Rows(Sequence):
    """The comparison's rows (shared cases, in the baseline's case order), each made when read: a
    page of 25 makes 25 rows and their cells, not one per shared case."""

    def __init__(self, keys: list[str], data: list[_ArmCases], order: list[int] | None = None) -> None:
        self.keys = keys
        self.data = data
        self.columns = [[d.index[k] for k in keys] for d in data]  # per arm: each row's column
        self.order = list(range(len(keys))) if order is None else order

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, item):
        if isinstance(item, slice):
            return [self._row(j) for j in self.order[item]]
        return self._row(self.order[item])

    def subset(self, order: list[int]) -> Rows:
        return Rows(self.keys, self.data, order)

    def _figures(self, j: int) -> list[tuple[float | None, bool | None]]:
        return [(d.score(col[j]), d.passed(col[j])) for d, col in zip(self.data, self.columns, strict=True)]

    def flipped(self, j: int) -> bool:
        (_, base), *others = self._figures(j)
        return base is True and any(passed is False for _, passed in others)

    def worst_drop(self, j: int) -> float:
        (base, _), *others = self._figures(j)
        if base is None:
            return 0.0
        return max((base - score for score, _ in others if score is not None), default=0.0)

    def disagree(self, j: int) -> bool:
        return any(d.disagree(col[j]) for d, col in zip(self.data, self.columns, strict=True))

    def _row(self, j: int) -> Row:
        cells: list[Cell] = []
        for d, col in zip(self.data, self.columns, strict=True):
            i = col[j]
            score, passed = d.score(i), d.passed(i)
            cell = Cell(
                output=d.output[i],
                error=d.error[i],
                score=score,
                passed=passed,
                samples=1 + len(d.more.get(i, ())),
                disagree=d.disagree(i),
            )
            if cells:
                base = cells[0]
                if score is not None and base.score is not None:
                    cell.delta = score - base.score
                cell.flipped = base.passed is True and passed is False
            cells.append(cell)
        return Row(key=self.keys[j], cells=cells)


def load_arms(arm_ids: list[int]) -> list[Arm]:
    if len(arm_ids) < 2:
        raise CompareError("pick at least two arms to compare")
    arms = Arm.objects.select_related("endpoint", "strategy", "run__suite_version__suite").in_bulk(arm_ids)
    missing = [i for i in arm_ids if i not in arms]
    if missing:
        raise CompareError(f"no arm with id {missing[0]}")
    ordered = [arms[i] for i in arm_ids]
    suites = {a.run.suite_version.suite_id for a in ordered}
    if len(suites) > 1:
        raise CompareError("arms can only be compared on the same suite")
    return ordered


def _per_case(arms: list[Arm]) -> list[_ArmCases]:
    """Each arm's results by case, in case and sample order: one query for all the arms."""
    by_arm = {arm.pk: _ArmCases() for arm in arms}
    rows = (
        Result.objects.filter(arm_id__in=list(by_arm))
        .order_by("case__position", "sample")
        .values_list("arm_id", "case__key", "output", "answer", "error", "score", "passed")
    )
    for arm_id, *values in rows:
        by_arm[arm_id].add(*values)
    return [by_arm[arm.pk] for arm in arms]


def compare(arm_ids: list[int]) -> dict:
    """Side-by-side rows and, for each arm against the first (the baseline), the paired statistics."""
    arms = load_arms(arm_ids)
    data = _per_case(arms)
    keys = [k for k in data[0].index if all(k in d.index for d in data[1:])]
    stats = []
    base_scores, base_passes = data[0].scores(), data[0].passes()
    for arm, d in zip(arms[1:], data[1:], strict=True):
        score, passed = _paired_stats(base_scores, d.scores(), base_passes, d.passes())
        stats.append({"arm": arm, "score": score, "pass": passed})
    return {
        "arms": arms,
        "stats": stats,
        "rows": Rows(keys, data),
        "shared_cases": len(keys),
        "pairwise": pairwise_rates(arms),
    }


def pairwise_rates(arms: list[Arm]) -> list[dict]:
    """The arms' pairwise win rates, each against its reference (the teacher, the baseline or another
    arm), as their run's scoring summarised them: rate, 95% CI, verdict (parity, wins, loses)."""
    return [
        {"arm": arm, "against": against} | figures
        for arm in arms
        for against, figures in sorted(((arm.summary or {}).get("pairwise") or {}).items())
        if isinstance(figures, dict)
    ]


def _paired_stats(base_scores: dict, scores: dict, base_passes: dict, passes: dict) -> tuple[dict, dict]:
    """compare_scores and compare_passes of an arm against the baseline, cached by their inputs (the
    per-case figures, in order): the same figures give the same statistics, so paging through a
    comparison or switching its view computes them once."""
    figures = repr([(list(d), list(d.values())) for d in (base_scores, scores, base_passes, passes)])
    key = "ftvp:compare-stats:" + hashlib.blake2b(figures.encode(), digest_size=20).hexdigest()
    cached = cache.get(key)
    if cached is None:
        cached = (
            compare_scores(base_scores, scores).to_dict(),
            compare_passes(base_passes, passes).to_dict(),
        )
        cache.set(key, cached, timeout=STATS_CACHE_SECONDS)
    return cached


def add_cases(rows: list[Row], baseline: Arm) -> None:
    """The input and expected outputs of the rows about to be shown, from the baseline arm's suite
    version (whose cases its results are of): one query for the page."""
    if not rows:
        return
    cases = {
        key: (case_input, expected)
        for key, case_input, expected in Case.objects.filter(
            version_id=baseline.run.suite_version_id, key__in=[row.key for row in rows]
        ).values_list("key", "input", "expected")
    }
    for row in rows:
        case_input, expected = cases.get(row.key, (None, None))
        row.input, row.expected = case_input, expected_as_list(expected)


def add_diffs(rows: list[Row]) -> None:
    """Word-level diffs against the first expected output, for the rows about to be shown only."""
    for row in rows:
        if not row.expected:
            continue
        for cell in row.cells:
            if not cell.error:
                cell.diff = word_diff(row.expected[0], cell.output)


def filter_rows(rows: Rows, view: str) -> Rows:
    """The rows a view shows: pass → fail flips, the largest drops first, or samples that disagree."""
    if view == "flipped":
        return rows.subset([j for j in rows.order if rows.flipped(j)])
    if view == "drops":
        drops = {j: rows.worst_drop(j) for j in rows.order}
        return rows.subset(sorted((j for j in rows.order if drops[j] > 0), key=drops.get, reverse=True))
    if view == "disagree":
        return rows.subset([j for j in rows.order if rows.disagree(j)])
    return rows


def arms_of_suite(suite_id: int, limit: int = 60):
    return (
        Arm.objects.filter(run__suite_version__suite_id=suite_id)
        .select_related("endpoint", "strategy", "run__suite_version")
        .order_by("-run__created_at", "position")[:limit]
    )
