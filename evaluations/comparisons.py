"""Reads for the compare page: two or more arms side by side on the cases they share.

Arms may come from one run or from several runs of the same suite; cases are matched by key.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from evaluations.analysis.compare import compare_passes, compare_scores
from evaluations.analysis.textdiff import word_diff
from evaluations.models import Arm, Result, expected_as_list


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
    input: object
    expected: list[str]
    cells: list[Cell]

    @property
    def worst_drop(self) -> float:
        drops = [-c.delta for c in self.cells[1:] if c.delta is not None]
        return max(drops, default=0.0)


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


def _per_case(arm: Arm) -> dict[str, dict]:
    """Per case key: mean score, pass (all samples pass), first output, sample agreement."""
    by_case: dict[str, dict] = defaultdict(lambda: {"scores": [], "passes": [], "answers": []})
    rows = (
        Result.objects.filter(arm=arm)
        .order_by("case__position", "sample")
        .values_list(
            "case__key", "case__input", "case__expected", "output", "answer", "error", "score", "passed"
        )
    )
    for key, case_input, expected, output, answer, error, score, passed in rows:
        entry = by_case[key]
        entry.setdefault("input", case_input)
        entry.setdefault("expected", expected)
        entry.setdefault("output", output)
        entry.setdefault("error", error)
        if score is not None:
            entry["scores"].append(score)
        if passed is not None:
            entry["passes"].append(passed)
        entry["answers"].append(" ".join((answer or output or error).casefold().split()))
    return by_case


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _case_scores(data: dict[str, dict]) -> dict[str, float]:
    """Each case's score: the mean of its samples."""
    return {k: _mean(v["scores"]) for k, v in data.items() if v["scores"]}


def _case_passes(data: dict[str, dict]) -> dict[str, bool]:
    """Each case passes when all its samples pass."""
    return {k: all(v["passes"]) for k, v in data.items() if v["passes"]}


def compare(arm_ids: list[int]) -> dict:
    """Side-by-side rows and, for each arm against the first (the baseline), the paired statistics."""
    arms = load_arms(arm_ids)
    data = [_per_case(arm) for arm in arms]
    keys = [k for k in data[0] if all(k in d for d in data[1:])]
    stats = []
    base_scores, base_passes = _case_scores(data[0]), _case_passes(data[0])
    for arm, d in zip(arms[1:], data[1:], strict=True):
        scores, passes = _case_scores(d), _case_passes(d)
        stats.append(
            {
                "arm": arm,
                "score": compare_scores(base_scores, scores).to_dict(),
                "pass": compare_passes(base_passes, passes).to_dict(),
            }
        )
    rows = []
    for key in keys:
        cells = []
        for i, d in enumerate(data):
            entry = d[key]
            score, passed = _mean(entry["scores"]), all(entry["passes"]) if entry["passes"] else None
            cell = Cell(
                output=entry["output"],
                error=entry["error"],
                score=score,
                passed=passed,
                samples=len(entry["answers"]),
                disagree=len(Counter(entry["answers"])) > 1,
            )
            if i > 0:
                base = cells[0]
                if score is not None and base.score is not None:
                    cell.delta = score - base.score
                cell.flipped = base.passed is True and passed is False
            cells.append(cell)
        first = data[0][key]
        rows.append(
            Row(key=key, input=first["input"], expected=expected_as_list(first["expected"]), cells=cells)
        )
    return {"arms": arms, "stats": stats, "rows": rows, "shared_cases": len(keys)}


def add_diffs(rows: list[Row]) -> None:
    """Word-level diffs against the first expected output, for the rows about to be shown only."""
    for row in rows:
        if not row.expected:
            continue
        for cell in row.cells:
            if not cell.error:
                cell.diff = word_diff(row.expected[0], cell.output)


def filter_rows(rows: list[Row], view: str) -> list[Row]:
    if view == "flipped":
        return [r for r in rows if any(c.flipped for c in r.cells[1:])]
    if view == "drops":
        return sorted((r for r in rows if r.worst_drop > 0), key=lambda r: r.worst_drop, reverse=True)
    if view == "disagree":
        return [r for r in rows if any(c.disagree for c in r.cells)]
    return rows


def arms_of_suite(suite_id: int, limit: int = 60):
    return (
        Arm.objects.filter(run__suite_version__suite_id=suite_id)
        .select_related("endpoint", "strategy", "run__suite_version")
        .order_by("-run__created_at", "position")[:limit]
    )
