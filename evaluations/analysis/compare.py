"""Paired comparison of two arms on the same cases: difference, CI, test, verdict, needed sample size.

Arm `b` is compared against arm `a`: a positive difference means b scores higher / passes more often.
Only cases present in both arms (with a value that is not None) are compared.

- Scores: the mean of the per-case differences with a paired bootstrap CI (`bootstrap_mean_ci` over the
  differences), and the Wilcoxon signed-rank test (zero differences dropped, `zero_method="wilcox"`;
  scipy's method "auto": exact up to 50 distinct differences, exhaustive permutations up to 13 with
  ties, the normal approximation beyond; all deterministic). All differences zero -> p = 1.
- Pass/fail: the difference of pass rates with Newcombe's hybrid score interval for paired proportions
  (Newcombe 1998, method 10: Wilson intervals of both rates combined with a continuity-corrected phi),
  which is analytic, deterministic and keeps a sane width when no pair is discordant; and McNemar's
  exact test (two-sided binomial test of the discordant pairs against 1/2).

When the result is not significant, `needed_cases` estimates how many paired cases would detect the
observed difference with 80% power at `alpha` (normal approximations; None when the difference is 0).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from evaluations.analysis.stats import bootstrap_mean_ci, wilson_ci

BETTER = "better"
WORSE = "worse"
NO_DIFFERENCE = "no significant difference"

POWER = 0.8


@dataclass(frozen=True)
class Comparison:
    metric: str  # "score" | "pass"
    n: int
    mean_a: float | None
    mean_b: float | None
    diff: float | None  # mean_b - mean_a
    diff_ci: tuple[float | None, float | None]
    p_value: float | None
    test: str
    verdict: str
    needed_cases: int | None = None
    # Pass comparisons only: the paired 2x2 table.
    both_pass: int | None = None
    only_a: int | None = None
    only_b: int | None = None
    neither: int | None = None

    @property
    def significant(self) -> bool:
        return self.verdict != NO_DIFFERENCE

    def to_dict(self) -> dict:
        d = asdict(self)
        d["diff_ci"] = list(self.diff_ci)
        return d


def compare_scores(
    a: Mapping[Hashable, float | None],
    b: Mapping[Hashable, float | None],
    *,
    alpha: float = 0.05,
    seed: int = 0,
    n_resamples: int = 2000,
) -> Comparison:
    """Paired comparison of per-case scores (b vs a): bootstrap CI of the mean difference + Wilcoxon."""
    keys = _common_keys(a, b)
    n = len(keys)
    test = "wilcoxon"
    if n == 0:
        return Comparison("score", 0, None, None, None, (None, None), None, test, NO_DIFFERENCE)
    xa = np.array([float(a[k]) for k in keys])
    xb = np.array([float(b[k]) for k in keys])
    d = xb - xa
    diff = float(d.mean())
    _, low, high = bootstrap_mean_ci(d, n_resamples=n_resamples, seed=seed, bounds=None)
    # Wilcoxon drops zero differences; with nothing left there is no evidence of a difference.
    p = 1.0 if np.all(d == 0) else float(stats.wilcoxon(d, zero_method="wilcox").pvalue)
    verdict = _verdict(p, diff, alpha)
    needed = None
    if verdict == NO_DIFFERENCE and n >= 2:
        needed = _needed_paired_mean(diff, float(d.std(ddof=1)), alpha)
    return Comparison(
        "score", n, float(xa.mean()), float(xb.mean()), diff, (low, high), p, test, verdict, needed
    )


def compare_passes(
    a: Mapping[Hashable, bool | None],
    b: Mapping[Hashable, bool | None],
    *,
    alpha: float = 0.05,
    confidence: float = 0.95,
) -> Comparison:
    """Paired comparison of pass/fail (b vs a): Newcombe CI of the rate difference + McNemar exact test."""
    keys = _common_keys(a, b)
    n = len(keys)
    test = "mcnemar-exact"
    if n == 0:
        return Comparison(
            "pass", 0, None, None, None, (None, None), None, test, NO_DIFFERENCE, None, 0, 0, 0, 0
        )
    pa = [bool(a[k]) for k in keys]
    pb = [bool(b[k]) for k in keys]
    both = sum(x and y for x, y in zip(pa, pb, strict=True))
    only_a = sum(x and not y for x, y in zip(pa, pb, strict=True))
    only_b = sum(y and not x for x, y in zip(pa, pb, strict=True))
    neither = n - both - only_a - only_b
    discordant = only_a + only_b
    p = 1.0 if discordant == 0 else float(stats.binomtest(only_b, discordant, 0.5).pvalue)
    diff = (only_b - only_a) / n
    low, high = newcombe_paired_ci(both, only_b, only_a, neither, confidence=confidence)
    verdict = _verdict(p, diff, alpha)
    needed = _needed_mcnemar(discordant / n, diff, alpha) if verdict == NO_DIFFERENCE else None
    return Comparison(
        "pass",
        n,
        (both + only_a) / n,
        (both + only_b) / n,
        diff,
        (low, high),
        p,
        test,
        verdict,
        needed,
        both,
        only_a,
        only_b,
        neither,
    )


def newcombe_paired_ci(both: int, only_1: int, only_2: int, neither: int, *, confidence: float = 0.95):
    """Newcombe's (1998, method 10) interval for p1 - p2 of paired proportions.

    p1 = (both + only_1) / n and p2 = (both + only_2) / n. (None, None) for no pairs.
    """
    n = both + only_1 + only_2 + neither
    if n == 0:
        return None, None
    p1, l1, u1 = wilson_ci(both + only_1, n, confidence)
    p2, l2, u2 = wilson_ci(both + only_2, n, confidence)
    margins = (both + only_1) * (only_2 + neither) * (both + only_2) * (only_1 + neither)
    phi = 0.0
    if margins > 0:
        cross = both * neither - only_1 * only_2
        if cross > n / 2:
            phi = (cross - n / 2) / math.sqrt(margins)
        elif cross < 0:
            phi = cross / math.sqrt(margins)
    diff = p1 - p2
    low = diff - math.sqrt(max(0.0, (p1 - l1) ** 2 + (u2 - p2) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2)))
    high = diff + math.sqrt(max(0.0, (p2 - l2) ** 2 + (u1 - p1) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1)))
    return max(-1.0, low), min(1.0, high)


def _common_keys(a: Mapping, b: Mapping) -> list:
    # Keep a's order (deterministic for a given input), skip cases without a value in either arm.
    return [k for k in a if k in b and a[k] is not None and b[k] is not None]


def _verdict(p: float, diff: float, alpha: float) -> str:
    if p < alpha and diff > 0:
        return BETTER
    if p < alpha and diff < 0:
        return WORSE
    return NO_DIFFERENCE


def _z(alpha: float) -> tuple[float, float]:
    return float(stats.norm.ppf(1 - alpha / 2)), float(stats.norm.ppf(POWER))


def _ceil(x: float) -> int:
    # Rounding noise must not add a whole case (e.g. 100.00000000001 -> 100).
    return max(1, math.ceil(x - 1e-9))


def _needed_paired_mean(diff: float, sd: float, alpha: float) -> int | None:
    """Pairs to detect `diff` with 80% power: n = ((z_{1-alpha/2} + z_{0.8}) * sd / |diff|)^2."""
    if diff == 0 or sd == 0 or not math.isfinite(sd):
        return None
    z_a, z_b = _z(alpha)
    return _ceil(((z_a + z_b) * sd / abs(diff)) ** 2)


def _needed_mcnemar(p_disc: float, d: float, alpha: float) -> int | None:
    """Pairs for McNemar's test (Connor 1987): n = ((z_a*sqrt(p_disc) + z_b*sqrt(p_disc - d^2)) / d)^2."""
    if d == 0:
        return None
    z_a, z_b = _z(alpha)
    return _ceil(((z_a * math.sqrt(p_disc) + z_b * math.sqrt(max(0.0, p_disc - d * d))) / d) ** 2)
