"""Summary statistics with honest uncertainty: means with 95% CIs, Wilson intervals, percentiles."""

from __future__ import annotations

import math
import warnings
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


BCA_MAX_N = 2000


def bootstrap_mean_ci(
    values: Sequence[float | None],
    *,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    bounds: tuple[float, float] | None = (0.0, 1.0),
):
    """Mean and its bootstrap interval (`scipy.stats.bootstrap`), clipped to `bounds` (None: no clipping).

    BCa by default; when BCa is degenerate (e.g. every resample on one side of the mean, which
    scipy reports as NaN with a warning) the percentile interval of the same resamples is used.
    `None` values are dropped. No data -> (None, None, None); one value or no spread -> the point
    itself. The same `seed` gives the same interval.
    """
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    if arr.size == 0:
        return None, None, None
    mean = float(arr.mean())
    if arr.size == 1 or bool(np.all(arr == arr[0])):
        return mean, mean, mean
    # BCa's jackknife holds an n x (n - 1) array: past BCA_MAX_N values the percentile interval
    # (as accurate at such sizes) keeps memory flat.
    method = "BCa" if arr.size <= BCA_MAX_N else "percentile"
    low, high = _bootstrap_interval(arr, confidence, n_resamples, seed, method)
    if not (math.isfinite(low) and math.isfinite(high)):
        low, high = _bootstrap_interval(arr, confidence, n_resamples, seed, "percentile")
    # Keep the point inside its interval (rounding or a lopsided percentile interval could exclude it).
    low, high = min(low, mean), max(high, mean)
    if bounds is not None:
        low, high = max(bounds[0], low), min(bounds[1], high)
    return mean, float(low), float(high)


def _bootstrap_interval(arr: np.ndarray, confidence: float, n_resamples: int, seed: int, method: str):
    with warnings.catch_warnings():
        # BCa degeneracy is signalled by a warning plus NaN bounds; the NaN is what we act on.
        warnings.simplefilter("ignore")
        res = stats.bootstrap(
            (arr,),
            np.mean,
            n_resamples=n_resamples,
            confidence_level=confidence,
            method=method,
            vectorized=True,
            rng=np.random.default_rng(seed),
        )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)
