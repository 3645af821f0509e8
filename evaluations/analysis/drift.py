"""Drift: is a series of scores going down, and do an arm's outputs still look like the baseline's?

- **Score trend**: the Mann-Kendall test for a monotonic trend (normal approximation with the tie
  correction of the variance and the continuity correction), Kendall's tau (S over the number of
  pairs) and Sen's slope (the median of the pairwise slopes, per step). Fewer than `MIN_TREND_POINTS`
  values: no test. A constant series has no trend (p = 1).
- **Output drift**: a classifier two-sample test (C2ST) on output embeddings: label the baseline's
  outputs 0 and the current ones 1, fit a logistic regression in stratified k folds and score every
  output out of fold. The ROC AUC of those scores says how well outputs can be told apart: 0.5 (or
  below) means not at all, 1.0 always. Its p-value is the one-sided Mann-Whitney U test that the
  current outputs score higher. Identical inputs give an AUC at or below 0.5: no false alarm.
- The cosine distance between the two embedding centroids: how far the average meaning moved.
- Shifts of means (output length, completion tokens, latency, cost): relative change and the
  two-sided Mann-Whitney U p-value.

`output_drift` combines these with the thresholds below. Only the outputs decide (embeddings,
length, tokens): latency and cost shifts are reported, but a faster server or a new price alone is
not output drift. The centroid distance sizes the drift; it raises a finding only together with a
significant C2ST, since its noise depends on the sample size.

No Django here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

# --- thresholds -------------------------------------------------------------------------------------
MIN_TREND_POINTS = 4  # fewer values: no trend test
TREND_ALPHA = 0.01  # a trend is significant below this two-sided p (nightly re-tests: kept strict)
MIN_PER_CLASS = 4  # fewer outputs on either side: no classifier test
DRIFT_ALPHA = 0.01  # C2ST and shifts are significant below this p
AUC_DRIFT = 0.75  # a significant C2ST with at least this AUC is output drift ...
AUC_CRITICAL = 0.90  # ... critical from here (outputs almost always told apart)
CENTROID_DRIFT = 0.20  # a significant C2ST (any AUC) with centroids this far apart is drift too
SHIFT_MIN_FOLD = 1.5  # a significant change of mean output length/tokens by this factor is drift ...
SHIFT_CRITICAL_FOLD = 2.0  # ... critical from here (twice as long, or half)
SCORE_STABLE = 0.02  # mean scores closer than this are "stable" in the sentences

# Shift metrics: the ones that describe the outputs themselves decide; the others are context.
OUTPUT_METRICS = ("output_chars", "completion_tokens")
METRIC_LABELS = {
    "output_chars": "Output length",
    "completion_tokens": "Completion tokens",
    "latency_ms": "Latency",
    "cost": "Cost per request",
}
METRIC_UNITS = {"output_chars": " chars", "completion_tokens": " tokens", "latency_ms": " ms", "cost": " USD"}


def _finite(values: Sequence[float | None]) -> np.ndarray:
    out = np.array([float(v) for v in values if v is not None], dtype=float)
    return out[np.isfinite(out)]


def _clean(x: float | None) -> float | None:
    """A float for JSON: None for missing, NaN or infinite."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


# --- score trend ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrendTest:
    n: int
    s: int  # Mann-Kendall S: concordant minus discordant pairs
    var_s: float
    z: float | None
    p_value: float | None  # two-sided
    tau: float | None  # Kendall's tau-a: S / (n (n - 1) / 2)
    slope: float | None  # Sen's slope, per step
    direction: str  # "up" | "down" | "none"
    alpha: float = TREND_ALPHA

    def to_dict(self) -> dict:
        return {k: _clean(v) if isinstance(v, float) else v for k, v in asdict(self).items()}


def mann_kendall(values: Sequence[float], *, alpha: float = TREND_ALPHA) -> TrendTest:
    """Mann-Kendall test of a monotonic trend in `values` (in time order; None/NaN are dropped)."""
    x = _finite(values)
    n = len(x)
    if n < 2:
        return TrendTest(n=n, s=0, var_s=0.0, z=None, p_value=None, tau=None, slope=None, direction="none")
    i, j = np.triu_indices(n, k=1)
    diffs = x[j] - x[i]
    s = int(np.sign(diffs).sum())
    pairs = n * (n - 1) / 2
    slope = float(np.median(diffs / (j - i)))
    tau = s / pairs
    if n < MIN_TREND_POINTS:
        return TrendTest(n=n, s=s, var_s=0.0, z=None, p_value=None, tau=tau, slope=slope, direction="none")
    _, ties = np.unique(x, return_counts=True)
    ties = ties[ties > 1].astype(float)
    var_s = float((n * (n - 1) * (2 * n + 5) - np.sum(ties * (ties - 1) * (2 * ties + 5))) / 18)
    if var_s <= 0 or s == 0:  # a constant series, or as many ups as downs
        return TrendTest(n=n, s=s, var_s=var_s, z=0.0, p_value=1.0, tau=tau, slope=slope, direction="none")
    z = (s - 1) / math.sqrt(var_s) if s > 0 else (s + 1) / math.sqrt(var_s)
    p = float(2 * stats.norm.sf(abs(z)))
    direction = "none"
    if p < alpha:
        direction = "up" if s > 0 else "down"
    return TrendTest(
        n=n, s=s, var_s=var_s, z=float(z), p_value=p, tau=tau, slope=slope, direction=direction, alpha=alpha
    )


# --- classifier two-sample test ---------------------------------------------------------------------


@dataclass(frozen=True)
class TwoSample:
    n_a: int
    n_b: int
    folds: int  # 0 when the samples were too small to test
    auc: float | None  # out-of-fold ROC AUC: 0.5 indistinguishable, 1.0 always told apart
    p_value: float | None  # one-sided Mann-Whitney U: b's out-of-fold scores higher than a's

    def to_dict(self) -> dict:
        return asdict(self)


def classifier_two_sample(a: np.ndarray, b: np.ndarray, *, folds: int = 5, seed: int = 0) -> TwoSample:
    """Can a logistic regression tell rows of `a` from rows of `b`? Out-of-fold AUC and its p-value."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.ndim == 1:
        a = a.reshape(-1, 1)
    if b.ndim == 1:
        b = b.reshape(-1, 1)
    n_a, n_b = len(a), len(b)
    smallest = min(n_a, n_b)
    if smallest < MIN_PER_CLASS:
        return TwoSample(n_a=n_a, n_b=n_b, folds=0, auc=None, p_value=None)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"both samples need the same number of features ({a.shape[1]} vs {b.shape[1]})")
    k = max(2, min(folds, smallest))
    x = np.vstack([a, b])
    y = np.concatenate([np.zeros(n_a, dtype=int), np.ones(n_b, dtype=int)])
    oof = np.empty(len(y), dtype=float)
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for train, test in splitter.split(x, y):
        model = LogisticRegression(C=1.0, max_iter=1000)
        model.fit(x[train], y[train])
        oof[test] = model.decision_function(x[test])
    if np.ptp(oof) == 0:  # every output scored alike: nothing tells them apart
        return TwoSample(n_a=n_a, n_b=n_b, folds=k, auc=0.5, p_value=1.0)
    auc = float(roc_auc_score(y, oof))
    p = float(stats.mannwhitneyu(oof[y == 1], oof[y == 0], alternative="greater").pvalue)
    return TwoSample(n_a=n_a, n_b=n_b, folds=k, auc=auc, p_value=p)


def centroid_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine distance (0..2) between the mean vectors of `a` and `b`; 0 when either mean is zero."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if len(a) == 0 or len(b) == 0:
        raise ValueError("centroid_distance needs at least one vector on each side")
    ca, cb = a.mean(axis=0), b.mean(axis=0)
    na, nb = np.linalg.norm(ca), np.linalg.norm(cb)
    if na == 0 or nb == 0:
        return 0.0
    return float(np.clip(1.0 - np.dot(ca, cb) / (na * nb), 0.0, 2.0))


# --- shifts of means --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shift:
    n_baseline: int
    n_current: int
    baseline_mean: float | None
    current_mean: float | None
    relative_change: float | None  # (current - baseline) / baseline
    p_value: float | None  # two-sided Mann-Whitney U

    @property
    def fold(self) -> float | None:
        """max(current/baseline, baseline/current): 2.0 means twice as long, or half."""
        b, c = self.baseline_mean, self.current_mean
        if b is None or c is None:
            return None
        b, c = abs(b), abs(c)
        if b == 0 and c == 0:
            return 1.0
        if b == 0 or c == 0:
            return math.inf
        return max(c / b, b / c)

    @property
    def significant(self) -> bool:
        """Significant (p < DRIFT_ALPHA) and large (by SHIFT_MIN_FOLD or more)."""
        fold = self.fold
        return (
            self.p_value is not None
            and self.p_value < DRIFT_ALPHA
            and fold is not None
            and fold >= SHIFT_MIN_FOLD
        )

    def to_dict(self) -> dict:
        fold = self.fold
        return asdict(self) | {
            "fold": None if fold is None or math.isinf(fold) else fold,
            "significant": self.significant,
        }


def shift(baseline: Sequence[float | None], current: Sequence[float | None]) -> Shift:
    """How the mean moved from `baseline` to `current` (None/NaN dropped), with a Mann-Whitney p."""
    a, b = _finite(baseline), _finite(current)
    mean_a = float(a.mean()) if len(a) else None
    mean_b = float(b.mean()) if len(b) else None
    relative = None
    if mean_a is not None and mean_b is not None:
        if mean_a != 0:
            relative = (mean_b - mean_a) / abs(mean_a)
        elif mean_b == 0:
            relative = 0.0
    p = None
    if len(a) >= 2 and len(b) >= 2:
        if np.ptp(np.concatenate([a, b])) == 0:
            p = 1.0
        else:
            p = float(stats.mannwhitneyu(b, a, alternative="two-sided").pvalue)
    return Shift(
        n_baseline=len(a), n_current=len(b), baseline_mean=mean_a, current_mean=mean_b,
        relative_change=relative, p_value=p,
    )  # fmt: skip


# --- the verdict ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DriftReport:
    drifted: bool
    severity: str  # "none" | "warning" | "critical"
    two_sample: TwoSample
    centroid_distance: float | None
    shifts: dict[str, Shift]
    reasons: list[str]
    inputs_same: bool
    silent_update_suspected: bool
    thresholds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "drifted": self.drifted,
            "severity": self.severity,
            "auc": _clean(self.two_sample.auc),
            "p_value": _clean(self.two_sample.p_value),
            "folds": self.two_sample.folds,
            "n_baseline": self.two_sample.n_a,
            "n_current": self.two_sample.n_b,
            "centroid_distance": _clean(self.centroid_distance),
            "shifts": {
                name: {"label": METRIC_LABELS.get(name, name)}
                | {k: _clean(v) if isinstance(v, float) else v for k, v in s.to_dict().items()}
                for name, s in self.shifts.items()
            },
            "reasons": list(self.reasons),
            "inputs_same": self.inputs_same,
            "silent_update_suspected": self.silent_update_suspected,
            "thresholds": dict(self.thresholds),
        }


def _p(p: float | None) -> str:
    if p is None:
        return "p n/a"
    return "p < 0.0001" if p < 0.0001 else f"p = {p:.2g}"


def _amount(value: float | None, metric: str) -> str:
    if value is None:
        return "n/a"
    unit = METRIC_UNITS.get(metric, "")
    if metric == "cost":  # three significant digits, never in e-notation: $0.0000397
        if value == 0:
            return "$0"
        digits = max(2, min(10, 2 - math.floor(math.log10(abs(value)))))
        return f"${value:.{digits}f}"
    return f"{value:,.1f}{unit}"


def _shift_sentence(metric: str, s: Shift) -> str:
    fold = s.fold
    if fold is None or math.isinf(fold):
        factor = "from nothing" if not s.baseline_mean else "to nothing"
    else:
        ratio = (s.current_mean or 0) / s.baseline_mean if s.baseline_mean else 0
        factor = f"x{ratio:.1f}"
    return (
        f"{METRIC_LABELS.get(metric, metric)} went from {_amount(s.baseline_mean, metric)} to "
        f"{_amount(s.current_mean, metric)} on average ({factor}, {_p(s.p_value)})."
    )


def output_drift(
    *,
    baseline_embeddings: np.ndarray,
    current_embeddings: np.ndarray,
    baseline_metrics: Mapping[str, Sequence[float | None]],
    current_metrics: Mapping[str, Sequence[float | None]],
    inputs_same: bool,
    suite_versions: tuple[int, int] | None = None,
    endpoint_changed: bool = False,
    mean_scores: tuple[float | None, float | None] | None = None,
    seed: int = 0,
) -> DriftReport:
    """Have the current outputs drifted from the baseline's? Evidence, verdict, severity, sentences.

    `*_metrics` map a metric (see METRIC_LABELS) to per-output values. `inputs_same`: the cases'
    inputs (and so the prompts) are the baseline's; `suite_versions`: (baseline, current) numbers;
    `endpoint_changed`: the endpoint's configuration (model, URL, parameters) changed since then.
    """
    base = np.asarray(baseline_embeddings, dtype=float)
    cur = np.asarray(current_embeddings, dtype=float)
    test = classifier_two_sample(base, cur, seed=seed)
    distance = centroid_distance(base, cur) if len(base) and len(cur) else None
    shifts = {
        name: shift(baseline_metrics.get(name, []), current_metrics.get(name, []))
        for name in METRIC_LABELS
        if name in baseline_metrics or name in current_metrics
    }

    reasons: list[str] = []
    c2st_significant = test.auc is not None and test.p_value is not None and test.p_value < DRIFT_ALPHA
    by_auc = c2st_significant and test.auc >= AUC_DRIFT
    by_centroid = c2st_significant and distance is not None and distance >= CENTROID_DRIFT
    output_shifts = [name for name in OUTPUT_METRICS if name in shifts and shifts[name].significant]
    drifted = bool(by_auc or by_centroid or output_shifts)

    if by_auc or by_centroid:
        reasons.append(
            f"A classifier tells this run's outputs from the baseline's with AUC {test.auc:.2f} "
            f"({_p(test.p_value)}; 0.5 means indistinguishable, 1.0 always told apart)."
        )
    if distance is not None and (by_centroid or (drifted and distance >= CENTROID_DRIFT / 2)):
        reasons.append(
            f"The average meaning of the outputs moved: the embedding centroids are {distance:.3f} "
            "apart (cosine distance; 0 is the same)."
        )
    for name in output_shifts:
        reasons.append(_shift_sentence(name, shifts[name]))
    context = [name for name in shifts if name not in OUTPUT_METRICS and shifts[name].significant]
    for name in context:
        reasons.append(_shift_sentence(name, shifts[name]))

    silent = False
    if drifted:
        if mean_scores and None not in mean_scores:
            before, after = mean_scores
            stable = abs(after - before) <= SCORE_STABLE
            reasons.append(
                f"The mean score went from {before:.3f} to {after:.3f}"
                + (": stable, so the scores alone would not show this drift." if stable else ".")
            )
        changed_version = suite_versions is not None and suite_versions[0] != suite_versions[1]
        versions = f"v{suite_versions[0]} to v{suite_versions[1]}" if changed_version else ""
        if inputs_same:
            where = (
                f"the suite version changed ({versions}) but these cases' inputs did not"
                if changed_version
                else "same suite version"
            )
            reasons.append(
                f"The inputs are the baseline's ({where}): output drift with stable inputs is the "
                "signature of a silent model update behind the endpoint."
            )
            silent = not endpoint_changed
        elif changed_version:
            reasons.append(
                f"The suite version changed too ({versions}): the inputs changed, so part of this drift "
                "may come from them rather than from the model."
            )
        else:
            reasons.append(
                "The inputs differ from the baseline's, so part of this drift may come from them rather "
                "than from the model."
            )
        if endpoint_changed:
            reasons.append(
                "The endpoint's configuration (model, URL or parameters) changed since the baseline: the "
                "drift may come from that change."
            )

    severity = "none"
    if drifted:
        critical = (by_auc and test.auc >= AUC_CRITICAL) or any(
            (shifts[name].fold or 0) >= SHIFT_CRITICAL_FOLD for name in output_shifts
        )
        severity = "critical" if critical else "warning"
    return DriftReport(
        drifted=drifted,
        severity=severity,
        two_sample=test,
        centroid_distance=distance,
        shifts=shifts,
        reasons=reasons,
        inputs_same=inputs_same,
        silent_update_suspected=silent,
        thresholds={
            "alpha": DRIFT_ALPHA,
            "auc": AUC_DRIFT,
            "auc_critical": AUC_CRITICAL,
            "centroid": CENTROID_DRIFT,
            "shift_fold": SHIFT_MIN_FOLD,
            "shift_fold_critical": SHIFT_CRITICAL_FOLD,
        },
    )
