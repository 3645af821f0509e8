"""Summary statistics with honest uncertainty: means with 95% CIs, Wilson intervals, percentiles."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats


def mean_ci(values: Sequence[float], confidence: float = 0.95, bounds: tuple[float, float] = (0.0, 1.0)):
    """Mean and its t-interval, clipped to `bounds`. (None, None, None) for no data.

    With one value, or no spread, the interval is the point itself: the data give no width.
    """
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    n = arr.size
    if n == 0:
        return None, None, None
    mean = float(arr.mean())
    if n == 1 or float(arr.std(ddof=1)) == 0.0:
        return mean, mean, mean
    sem = float(arr.std(ddof=1)) / math.sqrt(n)
    low, high = stats.t.interval(confidence, df=n - 1, loc=mean, scale=sem)
    return mean, float(max(bounds[0], low)), float(min(bounds[1], high))


def wilson_ci(successes: int, n: int, confidence: float = 0.95):
    """Wilson score interval of a proportion (sane at 0% and 100%, unlike the normal interval)."""
    if n == 0:
        return None, None, None
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # The interval always contains p; min/max only keep rounding from pushing 0/n or n/n outside it.
    return p, max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


def percentile(values: Sequence[float], q: float) -> float | None:
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    if arr.size == 0:
        return None
    return float(np.percentile(arr, q))


def mean_or_none(values: Sequence[float | None]) -> float | None:
    arr = [v for v in values if v is not None]
    return float(sum(arr) / len(arr)) if arr else None
