"""Win rate of an arm against a reference, from pairwise judgements: the rate, its 95% CI, parity.

Each judged pair scores 1 (the arm's answer preferred), 0.5 (a tie) or 0 (the reference's preferred).
A case's outcome is the mean over its judged samples, so a case with repeats counts once. The win rate
is the mean over cases, ties counting as half a win.

The interval is Wilson's score interval with ties as half wins: the case outcomes are summed as
fractional successes out of the number of cases. Wilson stays inside [0, 1] and keeps a width at 0% and
100% and with few cases (a t-interval collapses to a point when every case has the same outcome). With
ties, the outcomes vary less than a coin's, so the interval is, if anything, a little wide: it does not
claim a difference the data do not show.

Parity: the CI contains 0.5 (no evidence either is preferred); otherwise the arm wins (CI above 0.5) or
loses (CI below).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from evaluations.analysis.stats import wilson_ci

PARITY, WINS, LOSES = "parity", "wins", "loses"


def case_outcomes(judged: Iterable[tuple[object, float]]) -> dict[object, float]:
    """Each case's outcome (the mean of its samples' 1 / 0.5 / 0), from (case, score) pairs."""
    sums: dict[object, list[float]] = {}
    for case, score in judged:
        entry = sums.setdefault(case, [0.0, 0])
        entry[0] += float(score)
        entry[1] += 1
    return {case: total / n for case, (total, n) in sums.items()}


def win_rate(outcomes: Mapping[object, float] | Iterable[float], *, confidence: float = 0.95) -> dict:
    """The win rate over cases with its Wilson CI (ties as half wins) and the verdict.

    `outcomes`: one value in [0, 1] per case (or a mapping case -> value). Returns n, wins, ties,
    losses (cases whose outcome is above, at, below 0.5), rate, ci (low, high) and verdict ("parity",
    "wins", "loses"; None without cases)."""
    values = [float(v) for v in (outcomes.values() if isinstance(outcomes, Mapping) else outcomes)]
    for v in values:
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"a pairwise outcome must be within [0, 1], got {v}")
    n = len(values)
    wins = sum(1 for v in values if v > 0.5)
    ties = sum(1 for v in values if v == 0.5)
    losses = n - wins - ties
    if n == 0:
        return {"n": 0, "wins": 0, "ties": 0, "losses": 0, "rate": None, "ci": [None, None], "verdict": None}
    rate, low, high = wilson_ci(sum(values), n, confidence)
    return {
        "n": n,
        "wins": wins,
        "ties": ties,
        "losses": losses,
        "rate": rate,
        "ci": [low, high],
        "verdict": verdict(low, high),
    }


def verdict(low: float | None, high: float | None) -> str | None:
    """ "parity" when [low, high] contains 0.5, else "wins" (above) or "loses" (below)."""
    if low is None or high is None:
        return None
    if low > 0.5:
        return WINS
    if high < 0.5:
        return LOSES
    return PARITY


def summarise(rows: Iterable[tuple[object, dict | None]], *, confidence: float = 0.95) -> dict[str, dict]:
    """An arm's pairwise checks, by what they compare against: the win rate (see `win_rate`) with the
    reference's label, and how many checks the judge failed on or did not apply.

    `rows`: (case, the result's scores) pairs, as written by the scoring (each check's ``pairwise``
    details hold ``against``, ``reference``, ``outcome``, ``error`` or ``not_applicable``)."""
    judged: dict[str, list[tuple[object, float]]] = {}
    extra: dict[str, dict] = {}
    for case, scores in rows:
        for check in (scores or {}).get("assertions") or []:
            details = check.get("pairwise") if isinstance(check, dict) else None
            if not isinstance(details, dict) or details.get("is_reference"):
                continue  # the reference arm's own checks: nothing to compare
            against = str(details.get("against", ""))
            info = extra.setdefault(against, {"reference": "", "errors": 0, "not_applicable": 0})
            if details.get("reference") and not info["reference"]:
                info["reference"] = str(details["reference"])
            if "outcome" in details and details["outcome"] in _OUTCOME:
                judged.setdefault(against, []).append((case, _OUTCOME[details["outcome"]]))
            elif "error" in details:
                info["errors"] += 1
            else:
                info["not_applicable"] += 1
    return {
        against: win_rate(case_outcomes(judged.get(against, [])), confidence=confidence) | info
        for against, info in sorted(extra.items())
    }


_OUTCOME = {"win": 1.0, "tie": 0.5, "loss": 0.0}
