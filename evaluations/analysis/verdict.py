"""Is prompting enough, or does fine-tuning pay off? The ladder, the cost model and the verdict.

Pure functions over measured arms (no Django). The method, its formulas and assumptions are in
docs/decision.md; in short:

- Arms sit on a ladder per base model: zero-shot -> few-shot (random) -> few-shot (nearest) ->
  few-shot (optimised) -> system/structured -> chain-of-thought -> retrieval (RAG) -> fine-tuned ->
  hybrid (a fine-tuned model with a prompt) -> fine-tuned + RAG. Each step is compared with the best
  arm of the step below it, paired on cases. Retrieval arms on a base model belong with prompting
  (the "prompting-or-retrieval" family): no training, only a longer prompt.
- Cost per request comes from measured tokens (and compute seconds) x the endpoint's current
  prices; an endpoint without prices has an unknown cost, never a zero one.
- An arm meets the target when its mean score reaches it; whether that is certain is told by its
  95% interval, and the verdict says so when it is not.
- The verdict picks its arms on one half of the cases and reports them on the other
  (analysis/selection.py), so that an arm picked as the best of many is not judged on its luck.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np
from scipy import stats

from evaluations.analysis.compare import BETTER, WORSE, Comparison, compare_scores
from evaluations.analysis.costs import break_even, cumulative_costs, per_request_cost, retrains_in
from evaluations.analysis.selection import (
    BONFERRONI,
    CONFIRMATION,
    MIN_HALF_CASES,
    SAME_CASES,
    SELECTION,
    SPLIT,
    bonferroni,
    case_half,
)

PROMPTING, FINE_TUNED, HYBRID = "prompting", "fine_tuned", "hybrid"

# Ladder levels, in order (the index is the level). Base-model `plain` and `template` prompts sit
# with zero-shot; `rag+few-shot-nearest` shares the retrieval rung with `rag`.
LEVELS = (
    ("zero-shot", "Zero-shot"),
    ("few-shot", "Few-shot (random)"),
    ("few-shot-nearest", "Few-shot (nearest)"),
    ("few-shot-optimized", "Few-shot (optimised)"),
    ("system", "System prompt / structured output"),
    ("cot", "Chain-of-thought"),
    ("rag", "Retrieval (RAG)"),
    ("fine-tuned", "Fine-tuned"),
    ("hybrid", "Hybrid (fine-tuned + prompt)"),
    ("fine-tuned-rag", "Fine-tuned + RAG"),
)
_LEVEL_OF = {
    "zero-shot": 0, "plain": 0, "template": 0, "few-shot": 1, "few-shot-nearest": 2,
    "few-shot-optimized": 3, "system": 4, "structured": 4, "cot": 5, "rag": 6, "rag+few-shot-nearest": 6,
}  # fmt: skip
RETRIEVAL_LEVEL = 6  # the top of the prompting-or-retrieval rungs
FINE_TUNED_LEVEL, HYBRID_LEVEL, FINE_TUNED_RAG_LEVEL = 7, 8, 9
# The strategy kinds whose prompt holds train examples, and those that hold retrieved passages
# (the same sets as evaluations/strategies.py, which this pure package may not import).
FEW_SHOT_KINDS = frozenset({"few-shot", "few-shot-nearest", "few-shot-optimized", "rag+few-shot-nearest"})
RAG_KINDS = frozenset({"rag", "rag+few-shot-nearest"})

MIN_FINE_TUNE_EXAMPLES = 500
MAX_ERROR_SHARE = 0.5  # an arm with more failed calls than this is not evidence of quality

PROMPTING_ENOUGH = "prompting-enough"
FINE_TUNE = "fine-tune"
FINE_TUNE_FOR_COST = "fine-tune-for-cost"
HYBRID_VERDICT = "hybrid"
COLLECT_MORE_DATA = "collect-more-data"
INCONCLUSIVE = "inconclusive"
NO_EVIDENCE = "no-evidence"

TITLES = {
    PROMPTING_ENOUGH: "Prompting is enough",
    FINE_TUNE: "Prompting has stopped being enough: fine-tune",
    FINE_TUNE_FOR_COST: "Fine-tune for cost",
    HYBRID_VERDICT: "Fine-tune and keep a prompt (hybrid)",
    COLLECT_MORE_DATA: "Collect more data first",
    INCONCLUSIVE: "Inconclusive: more cases needed",
    NO_EVIDENCE: "No evidence yet",
}

URGENCY = {
    "now": "needed within days",
    "soon": "needed within weeks",
    "later": "no deadline",
}


@dataclass(frozen=True)
class Prices:
    """An endpoint's prices in USD: per 1M input / output tokens, per compute hour, hosting per month."""

    price_in: float = 0.0
    price_out: float = 0.0
    price_hour: float = 0.0
    hosting_monthly: float = 0.0

    @property
    def priced(self) -> bool:
        return any((self.price_in, self.price_out, self.price_hour, self.hosting_monthly))


@dataclass(frozen=True)
class ArmEvidence:
    """What was measured for one arm, and what its endpoint costs."""

    key: str
    label: str
    endpoint: str
    strategy: str  # the strategy's kind
    family: str  # PROMPTING | FINE_TUNED | HYBRID
    base: str  # the base model's endpoint name: the ladder this arm belongs to
    mean: float | None
    ci: tuple[float | None, float | None] = (None, None)
    pass_rate: float | None = None
    pass_ci: tuple[float | None, float | None] = (None, None)
    consistency: float | None = None
    cases: int = 0
    results: int = 0
    errors: int = 0
    local: bool = False  # served by the local provider (compute-priced)
    prompt_tokens: float | None = None
    completion_tokens: float | None = None
    compute_seconds: float | None = None
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    measured_cost_per_request: float | None = None
    prices: Prices = field(default_factory=Prices)
    training_cost: float | None = None  # fine-tuned endpoints: one-time USD; None when unknown
    # prompting arms: what making the prompt cost once (an optimised few-shot's search), USD
    setup_cost: float = 0.0
    # fine-tuned arms: what making the training data cost once (a teacher's labelling run, synthetic
    # generation), USD; part of the training cost
    data_cost: float = 0.0
    # a distilled student: the key of the teacher's arm (the prompting it replaces), when it was run
    distilled_from: str | None = None
    scores: Mapping[str, float] = field(default_factory=dict)  # per case key (mean of its samples)

    @property
    def retrieval(self) -> bool:
        """The prompt holds retrieved passages (a RAG strategy)."""
        return self.strategy in RAG_KINDS

    @property
    def level(self) -> int:
        if self.family != PROMPTING and self.retrieval:
            return FINE_TUNED_RAG_LEVEL  # a fine-tuned endpoint with a RAG strategy
        if self.family == FINE_TUNED:
            return FINE_TUNED_LEVEL
        if self.family == HYBRID:
            return HYBRID_LEVEL
        return _LEVEL_OF.get(self.strategy, 0)


@dataclass(frozen=True)
class Profile:
    """The suite's decision profile (what the team knows that the run cannot measure)."""

    quality_target: float
    monthly_volume: float
    horizon_months: float = 12
    retrains_per_year: float = 0
    examples_available: int = 0
    train_tokens_per_example: float | None = None  # measured on the train split
    training_epochs: int = 3
    training_price_per_1m: float = 0.0
    urgency: str = "soon"
    monthly_budget: float | None = None
    # The suite version has knowledge documents: a retrieval (RAG) arm can be run. Without them a
    # rag run is refused, so retrieval is not a rung left to try, only one the suite cannot measure.
    knowledge: bool = True
    # Measured on captured traffic (the capture proxy) instead of typed in: the monthly volume, and the
    # production prompt's tokens on that endpoint (the prompting cost a fine-tune would save).
    measured_endpoint: str | None = None
    measured_calls: int = 0
    measured_days: float = 0.0
    measured_prompt_tokens: float | None = None
    measured_completion_tokens: float | None = None


@dataclass
class Decision:
    verdict: str
    title: str
    summary: str
    arm: str | None = None
    evidence: list[str] = field(default_factory=list)
    caveats: list[str] = field(default_factory=list)
    cases_needed: int | None = None
    ladder: list[dict] = field(default_factory=list)
    costs: list[dict] = field(default_factory=list)
    break_even: dict | None = None
    curves: dict | None = None
    frontier: list[str] = field(default_factory=list)
    checklist: list[dict] = field(default_factory=list)
    profile: dict = field(default_factory=dict)
    # How the arms were picked and judged: {"rule": "split" | "same-cases", "selection_cases",
    # "confirmation_cases", "paired_cases", "correction", "comparisons", "flipped", "sentence"}.
    selection: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


# --- cost --------------------------------------------------------------------------------------


def cost_per_request(arm: ArmEvidence) -> float | None:
    """Measured tokens / compute x current prices; None when the endpoint has no prices, or has a
    price with nothing measured to apply it to. An endpoint priced only by its hosting costs
    nothing per request (a flat fee)."""
    p = arm.prices
    if not (p.price_in or p.price_out or p.price_hour):
        return 0.0 if p.hosting_monthly else None
    cost = per_request_cost(
        prompt_tokens=arm.prompt_tokens,
        completion_tokens=arm.completion_tokens,
        compute_seconds=arm.compute_seconds,
        price_in=p.price_in,
        price_out=p.price_out,
        price_hour=p.price_hour,
    )
    if cost is None and arm.local and p.price_hour and not (p.price_in or p.price_out):
        # Runs from before compute seconds were stored kept only the cost at the price of the day.
        measured = arm.measured_cost_per_request
        return measured if measured else None
    return cost


def training_cost(arm: ArmEvidence, profile: Profile) -> tuple[float | None, str]:
    """The arm's one-time training cost and where it comes from ('set', 'estimated' or why unknown)."""
    if arm.family == PROMPTING:
        return 0.0, "none"
    if arm.training_cost is not None:
        return arm.training_cost + arm.data_cost, "set"
    if not profile.train_tokens_per_example or not profile.examples_available:
        return None, "unknown: set the training cost on the endpoint, or add a train split to estimate it"
    if not profile.training_price_per_1m:
        return None, "unknown: set a price per 1M training tokens to estimate it"
    tokens = profile.train_tokens_per_example * profile.examples_available * profile.training_epochs
    return tokens * profile.training_price_per_1m / 1_000_000 + arm.data_cost, "estimated"


def horizon_cost(arm: ArmEvidence, profile: Profile) -> float | None:
    """Everything the arm costs over the horizon: requests, hosting, training and retraining."""
    per_request = cost_per_request(arm)
    train, _ = training_cost(arm, profile)
    if per_request is None or train is None:
        return None
    months = profile.horizon_months
    retrains = (
        retrains_in(retrains_per_year=profile.retrains_per_year, months=months)
        if arm.family != PROMPTING
        else 0
    )
    return (
        per_request * profile.monthly_volume * months
        + arm.prices.hosting_monthly * months
        + train * (1 + retrains)
        + arm.setup_cost
    )


def cost_table(arms: Sequence[ArmEvidence], profile: Profile) -> list[dict]:
    rows = []
    for arm in arms:
        per_request = cost_per_request(arm)
        train, train_source = training_cost(arm, profile)
        monthly = None
        if per_request is not None:
            monthly = per_request * profile.monthly_volume + arm.prices.hosting_monthly
        rows.append(
            {
                "arm": arm.label,
                "family": arm.family,
                "cost_per_request": per_request,
                "monthly_cost": monthly,
                "hosting_monthly": arm.prices.hosting_monthly,
                "training_cost": train if arm.family != PROMPTING else None,
                "setup_cost": arm.setup_cost if arm.family == PROMPTING and arm.setup_cost else None,
                "training_cost_source": train_source if arm.family != PROMPTING else None,
                "data_cost": arm.data_cost if arm.family != PROMPTING and arm.data_cost else None,
                "horizon_cost": horizon_cost(arm, profile),
                "prompt_tokens": arm.prompt_tokens,
                "completion_tokens": arm.completion_tokens,
                "priced": arm.prices.priced,
                "latency_p95_ms": arm.latency_p95_ms,
            }
        )
    return rows


# --- quality ---------------------------------------------------------------------------------


def meets(arm: ArmEvidence, target: float) -> bool:
    return arm.mean is not None and arm.mean >= target


def target_certainty(arm: ArmEvidence, target: float) -> str:
    """'meets' or 'misses' when the whole 95% interval is on one side of the target, else 'uncertain'."""
    low, high = arm.ci
    if low is not None and low >= target:
        return "meets"
    if high is not None and high < target:
        return "misses"
    return "uncertain"


def cases_to_settle_target(arm: ArmEvidence, target: float, *, confidence: float = 0.95) -> int | None:
    """Cases for the interval to stop straddling the target: n = (z sd / |mean - target|)^2, z = 1.96
    at 95%."""
    values = np.asarray(list(arm.scores.values()), dtype=float)
    if arm.mean is None or values.size < 2 or arm.mean == target:
        return None
    sd = float(values.std(ddof=1))
    if sd == 0:
        return None
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    return math.ceil((z * sd / abs(arm.mean - target)) ** 2)


def compare(a: ArmEvidence, b: ArmEvidence) -> Comparison:
    """b against a, paired on the cases both scored."""
    return compare_scores(dict(a.scores), dict(b.scores))


def build_ladder(arms: Sequence[ArmEvidence]) -> tuple[list[dict], dict[str, list[dict]]]:
    """One row per arm, ordered by base model and ladder level, each compared with the best arm of
    the nearest lower level of its ladder. Returns the rows and, per base, the step transitions
    (best of a level against best of the level below)."""
    rows: list[dict] = []
    transitions: dict[str, list[dict]] = {}
    bases = sorted({a.base for a in arms})
    for base in bases:
        group = sorted((a for a in arms if a.base == base), key=lambda a: (a.level, a.label))
        best_at: dict[int, ArmEvidence] = {}
        for arm in group:
            current = best_at.get(arm.level)
            if arm.mean is not None and (current is None or (current.mean or 0) < arm.mean):
                best_at[arm.level] = arm
        transitions[base] = []
        for arm in group:
            lower = [lv for lv in best_at if lv < arm.level]
            prev = best_at[max(lower)] if lower else None
            row = {
                "base": base,
                "level": arm.level,
                "step": LEVELS[arm.level][1],
                "arm": arm.label,
                "family": arm.family,
                "mean": arm.mean,
                "ci": list(arm.ci),
                "pass_rate": arm.pass_rate,
                "consistency": arm.consistency,
                "prompt_tokens": arm.prompt_tokens,
                "previous": prev.label if prev else None,
                "gain": None,
                "gain_ci": [None, None],
                "p_value": None,
                "significant": False,
                "verdict": None,
                "extra_prompt_tokens": None,
                "gain_per_100_tokens": None,
                "best_of_step": best_at.get(arm.level) is arm,
            }
            if prev is not None and arm.mean is not None and prev.mean is not None:
                cmp = compare(prev, arm)
                row.update(
                    gain=cmp.diff,
                    gain_ci=list(cmp.diff_ci),
                    p_value=cmp.p_value,
                    significant=cmp.significant,
                    verdict=cmp.verdict,
                )
                if arm.prompt_tokens is not None and prev.prompt_tokens is not None:
                    extra = arm.prompt_tokens - prev.prompt_tokens
                    row["extra_prompt_tokens"] = extra
                    if extra > 0 and cmp.diff is not None:
                        row["gain_per_100_tokens"] = cmp.diff / extra * 100
                if row["best_of_step"]:
                    transitions[base].append({"from": prev, "to": arm, "comparison": cmp})
            rows.append(row)
    return rows, transitions


def pareto_frontier(points: Sequence[tuple[str, float, float]]) -> list[str]:
    """Keys of the points (key, cost, quality) that no other point beats on both (cheaper or as
    cheap, and better or as good, strictly better on one), cheapest first."""
    frontier = []
    for key, cost, quality in points:
        dominated = any(
            c <= cost and q >= quality and (c < cost or q > quality) for k, c, q in points if k != key
        )
        if not dominated:
            frontier.append((cost, -quality, key))
    return [key for _, _, key in sorted(frontier)]


# --- the verdict -----------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _p(value: float | None) -> str:
    if value is None:
        return "=n/a"
    return "<0.0001" if value < 0.0001 else f"={value:.4f}"


def _ci(arm: ArmEvidence) -> str:
    low, high = arm.ci
    if low is None or high is None:
        return f"{_fmt(arm.mean)}"
    return f"{_fmt(arm.mean)} [{_fmt(low)}, {_fmt(high)}]"


def _usd(value: float | None) -> str:
    if value is None:
        return "unknown"
    if value and abs(value) < 0.01:
        return f"${value:.6f}"
    return f"${value:,.2f}"


def decide(arms: Sequence[ArmEvidence], profile: Profile) -> Decision:
    """The recommendation, with the numbers that led to it."""
    profile_dict = asdict(profile)
    unscored = [a.label for a in arms if a.mean is None]
    # An arm whose calls mostly failed measured its endpoint, not its quality: it is left out.
    broken = [a for a in arms if a.mean is not None and a.results and a.errors / a.results > MAX_ERROR_SHARE]
    arms = [a for a in arms if a.mean is not None and a not in broken]
    notes = []
    if unscored:
        verb = "are" if len(unscored) > 1 else "is"
        notes.append(f"{', '.join(unscored)} had no scored results and {verb} left out.")
    for a in broken:
        notes.append(
            f"{a.label} is left out: {a.errors} of its {a.results} calls failed (see the run's errors); "
            "fix the endpoint and run it again."
        )
    if not arms:
        d = Decision(
            NO_EVIDENCE,
            TITLES[NO_EVIDENCE],
            "No finished run with scored arms yet: run the suite on a few prompting strategies "
            "(and a fine-tuned model, if you have one) to get an answer.",
            caveats=notes,
            profile=profile_dict,
        )
        d.selection = plan_selection([]).describe(flipped=False)
        d.checklist = checklist(profile, None, None)
        return d
    ladder_rows, transitions = build_ladder(arms)
    costs = cost_table(arms, profile)
    prompting = [a for a in arms if a.family == PROMPTING]
    tuned = [a for a in arms if a.family != PROMPTING]
    sel = plan_selection(arms)
    picks = _pick(list(sel.picked.values()), profile)
    d = _judge(sel, picks, transitions, profile)
    flipped = bool(d.selection.get("flipped"))
    d.selection = sel.describe(flipped=flipped)
    if sel.rule == SPLIT and not flipped:
        d.summary += (
            f" Scores are on the {sel.n_confirmation} confirmation cases (the arms were picked on the "
            f"other {sel.n_selection})."
        )
    d.evidence.append(d.selection["sentence"])
    d.ladder, d.costs, d.profile = ladder_rows, costs, profile_dict
    d.caveats = notes + d.caveats
    if sel.correction == BONFERRONI:
        d.caveats.append(
            f"Only {sel.paired} paired cases: too few to pick the arms on one half and confirm them on "
            f"the other (at least {MIN_HALF_CASES} in each), so they were picked and judged on the same "
            "cases with a Bonferroni correction; with more cases (about 50 to 60 in all) the verdict "
            "would be confirmed on held-out cases."
        )
    if d.verdict not in (PROMPTING_ENOUGH, NO_EVIDENCE) and (
        line := unmeasured_line(prompting, knowledge=profile.knowledge)
    ):
        d.caveats.append(line)
    for a in arms:
        if a.errors:
            d.caveats.append(
                f"{a.label}: {a.errors} of {a.results} calls failed; they count as failed cases in its score."
            )
    points = [(a.label, c, a.mean) for a in arms if (c := cost_per_request(a)) is not None]
    d.frontier = pareto_frontier(points)
    if len(points) < len(arms):
        unpriced = [a.label for a in arms if cost_per_request(a) is None]
        d.caveats.append(
            "No cost is known for " + ", ".join(unpriced) + ": set the endpoint's prices to compare costs."
        )
    ref = sel.full.get(picks.p_meet or picks.best_p or "")
    _add_break_even(d, prompting, tuned, profile, ref)
    d.checklist = checklist(profile, d, _cheapest_meeting(prompting, profile))
    return d


# --- selection and confirmation (analysis/selection.py) ----------------------------------------


@dataclass(frozen=True)
class Selection:
    """How the verdict picks its arms and on which cases it judges them.

    `picked` holds the arms as the picks see them (the selection half; the paired cases under the
    Bonferroni fallback; all cases when nothing is picked), `judged` as the verdict reports them (the
    confirmation half; the paired cases with Bonferroni intervals; all cases), `full` as measured on
    all cases; each maps the arm's key to its evidence. Only under the split do `picked` and `judged`
    hold different cases, so only then can the two disagree (a flip)."""

    rule: str  # SPLIT | SAME_CASES
    paired: int
    n_selection: int
    n_confirmation: int
    k_prompting: int
    k_tuned: int
    correction: str | None
    picked: dict[str, ArmEvidence]
    judged: dict[str, ArmEvidence]
    full: dict[str, ArmEvidence]

    @property
    def comparisons(self) -> int:
        """The Bonferroni factor of a comparison of the picked prompting arm with the picked
        fine-tune: the pairs it was picked from (1 without a correction)."""
        if self.correction != BONFERRONI:
            return 1
        return max(1, self.k_prompting * self.k_tuned)

    def confidence(self, arm: ArmEvidence) -> float:
        """The level of the judged arm's interval: 95%, or 1 - 0.05 / k for an arm picked among k."""
        if self.correction != BONFERRONI:
            return 0.95
        k = self.k_prompting if arm.family == PROMPTING else self.k_tuned
        return 1 - 0.05 / max(1, k)

    def compare(self, a: ArmEvidence, b: ArmEvidence) -> Comparison:
        """b against a on the judged cases; Bonferroni-adjusted under the fallback; the cases needed
        doubled under the split (only the confirmation half judges)."""
        m = self.comparisons
        if m > 1:
            cmp = compare_scores(dict(a.scores), dict(b.scores), alpha=0.05 / m)
            cmp = replace(cmp, p_value=bonferroni(cmp.p_value, m), test=f"{cmp.test}, Bonferroni x{m}")
        else:
            cmp = compare(a, b)
        if self.rule == SPLIT and cmp.needed_cases:
            cmp = replace(cmp, needed_cases=2 * cmp.needed_cases)
        return cmp

    def settle(self, arm: ArmEvidence, target: float) -> int | None:
        """Cases for the judged arm's interval to clear the target (twice as many under the split)."""
        n = cases_to_settle_target(arm, target, confidence=self.confidence(arm))
        return 2 * n if n and self.rule == SPLIT else n

    def describe(self, *, flipped: bool) -> dict:
        if self.rule == SPLIT:
            sentence = (
                f"Selection and confirmation: the arms were picked on {self.n_selection} of the "
                f"{self.paired} paired cases and are reported on the other {self.n_confirmation} (a fixed "
                "split by a SHA-256 hash of each case key), so an arm picked as the best of several is "
                "not judged on the cases that picked it"
            )
            if flipped:
                sentence += "; the two halves point different ways, so the verdict is inconclusive"
        elif self.correction == BONFERRONI:
            pairs = (
                f"p-values x {self.comparisons} (the pairs of {self.k_prompting} prompting and "
                f"{self.k_tuned} fine-tuned arms), and "
                if self.comparisons > 1
                else ""
            )
            sentence = (
                f"Selection and confirmation: {self.paired} paired cases are too few to split (at least "
                f"{MIN_HALF_CASES} in each half are needed), so the arms were picked and judged on the same "
                f"cases, corrected for the picking (Bonferroni): {pairs}each picked arm's interval at "
                "1 - 0.05 / k for k arms of its side"
            )
        elif not self.picked:
            sentence = "Selection and confirmation: no arm was measured, so nothing was picked"
        elif self.paired == 0:
            sentence = (
                "Selection and confirmation: no per-case scores were available, so the arms could be "
                "neither split nor paired; the verdict uses their summaries"
            )
        else:
            sentence = (
                f"Selection and confirmation: with at most one prompting and one fine-tuned arm nothing "
                f"was picked, so all {self.paired} paired cases are used"
            )
        return {
            "rule": self.rule,
            "selection_cases": self.n_selection,
            "confirmation_cases": self.n_confirmation,
            "paired_cases": self.paired,
            "min_half_cases": MIN_HALF_CASES,
            "correction": self.correction,
            "comparisons": self.comparisons,
            "flipped": flipped,
            "sentence": sentence,
        }


def plan_selection(arms: Sequence[ArmEvidence]) -> Selection:
    """Split the paired cases (those every arm scored) into a selection and a confirmation half
    when the verdict has arms to pick among and each half holds at least MIN_HALF_CASES of them;
    else judge on the same cases, with a Bonferroni correction when something is picked."""
    k_p = sum(a.family == PROMPTING for a in arms)
    k_t = len(arms) - k_p
    full = {a.key: a for a in arms}
    common = set.intersection(*(set(a.scores) for a in arms)) if arms else set()
    paired = len(common)
    picks_made = k_p > 1 or k_t > 1
    if not picks_made or paired == 0:
        return Selection(SAME_CASES, paired, paired, paired, k_p, k_t, None, full, full, full)
    selection = {k for k in common if case_half(k) == SELECTION}
    confirmation = {k for k in common if case_half(k) == CONFIRMATION}
    if min(len(selection), len(confirmation)) >= MIN_HALF_CASES:
        return Selection(
            SPLIT,
            paired,
            len(selection),
            len(confirmation),
            k_p,
            k_t,
            None,
            {a.key: _restrict(a, selection) for a in arms},
            {a.key: _restrict(a, confirmation) for a in arms},
            full,
        )
    # Picked and judged on the same cases: the paired ones, so that an arm is never picked on cases
    # it is not judged on (arms that scored different cases would otherwise differ between the two).
    plan = Selection(SAME_CASES, paired, paired, paired, k_p, k_t, BONFERRONI, full, full, full)
    picked = {a.key: _restrict(a, common) for a in arms}
    judged = {a.key: _restrict(a, common, confidence=plan.confidence(a)) for a in arms}
    return replace(plan, picked=picked, judged=judged)


def _restrict(arm: ArmEvidence, keys: set, *, confidence: float = 0.95) -> ArmEvidence:
    """The arm on the given cases: their mean, its t-interval (as `stats.mean_ci`), their scores."""
    scores = {k: v for k, v in arm.scores.items() if k in keys}
    mean, low, high = _t_interval(list(scores.values()), confidence)
    return replace(arm, mean=mean, ci=(low, high), scores=scores, cases=len(scores))


def _t_interval(values: list[float], confidence: float) -> tuple[float | None, float | None, float | None]:
    """`stats.mean_ci` (the mean and its t-interval, clipped to [0, 1]) without scipy's per-call
    overhead: the verdict computes one per arm and half."""
    n = len(values)
    if n == 0:
        return None, None, None
    mean = math.fsum(values) / n
    var = math.fsum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    if var == 0.0:
        return mean, mean, mean
    half = _t_quantile(n - 1, confidence) * math.sqrt(var / n)
    return mean, max(0.0, mean - half), min(1.0, mean + half)


@functools.lru_cache(maxsize=1024)
def _t_quantile(df: int, confidence: float) -> float:
    return float(stats.t.ppf(0.5 + confidence / 2, df))


@dataclass(frozen=True)
class _Picks:
    """The arms the verdict picked (by key), on the picking cases."""

    best_p: str | None = None  # the best prompting-or-retrieval arm
    p_meet: str | None = None  # the cheapest prompting arm meeting the target
    cost_chosen: str | None = None  # a fine-tune meeting the target for less than p_meet
    ft_meet: tuple[str, ...] = ()  # the fine-tuned arms meeting the target
    chosen: str | None = None  # without p_meet: the fine-tune to recommend
    best_plain: str | None = None  # the best fine-tuned arm without a prompt


def _pick(arms: Sequence[ArmEvidence], profile: Profile) -> _Picks:
    target = profile.quality_target
    prompting = [a for a in arms if a.family == PROMPTING]
    tuned = [a for a in arms if a.family != PROMPTING]
    best_p = _best(prompting)
    p_meet = _cheapest_meeting(prompting, profile)
    ft_meet = [a for a in tuned if meets(a, target)]
    cost_chosen = chosen = None
    if p_meet is not None:
        p_cost = horizon_cost(p_meet, profile)
        cheaper = [
            a
            for a in ft_meet
            if p_cost is not None and (c := horizon_cost(a, profile)) is not None and c < p_cost
        ]
        cost_chosen = _cheapest(cheaper, profile) if cheaper else None
    elif tuned:
        plain_meet = [a for a in ft_meet if a.family == FINE_TUNED]
        # A plain fine-tune that meets the target is preferred to one that needs a prompt as well.
        chosen = _cheapest(plain_meet or ft_meet, profile) if ft_meet else _best(tuned)

    def key(a: ArmEvidence | None) -> str | None:
        return None if a is None else a.key

    return _Picks(
        best_p=key(best_p),
        p_meet=key(p_meet),
        cost_chosen=key(cost_chosen),
        ft_meet=tuple(a.key for a in ft_meet),
        chosen=key(chosen),
        best_plain=key(_best([a for a in tuned if a.family == FINE_TUNED])),
    )


def _flip(sel: Selection, arm: ArmEvidence, profile: Profile, what: str) -> Decision:
    """The halves disagree about the arm the decision turns on: inconclusive, with the cases that
    would settle whether it meets the target (on the confirmation half alone, so twice as many)."""
    target = profile.quality_target
    full = sel.full[arm.key]
    n = cases_to_settle_target(full, target)
    need = 2 * n if n else None
    d = Decision(
        INCONCLUSIVE,
        TITLES[INCONCLUSIVE],
        f"The two halves of the cases point different ways: {what}. The verdict would depend on "
        "which cases it is drawn from"
        + (f"; about {need} cases would settle it." if need else "; more cases would settle it."),
        arm=arm.label,
        evidence=[
            f"{arm.label} scores {_ci(sel.picked[arm.key])} on the {sel.n_selection} selection cases, "
            f"{_ci(arm)} on the {sel.n_confirmation} confirmation cases and {_ci(full)} on all "
            f"{sel.paired}, against the target {target:g}"
        ],
        cases_needed=need,
    )
    d.selection = {"flipped": True}
    return d


def _find_flip(sel: Selection, picks: _Picks, profile: Profile) -> Decision | None:
    """Under the split: does the confirmation half support the decision the selection half points to?

    The picks rest on which arms met the target on the selection half. The halves point different
    ways (a flip, None when they do not) when, on the confirmation half:

    - the prompting arm picked because it met the target (prompting would be enough) misses it;
    - the fine-tune picked because it met the target for less than that arm misses it;
    - with no prompting arm meeting the target on the selection half, the best one meets it;
    - the fine-tune picked because it met the target where prompting did not misses it, and is not
      significantly better than the best prompting arm either (a fine-tune that is still
      significantly better is the same decision, with the caveat that it falls short of the target).

    A difference confirmed on the confirmation half but not significant on the selection half, or a
    fine-tune short of the target on the selection half that meets it on the confirmation half (and
    is then judged there like any other), is not a flip: only the confirmation half tests."""
    target = profile.quality_target
    picked, judged = sel.picked, sel.judged
    prompting = [a for a in judged.values() if a.family == PROMPTING]
    if picks.p_meet is not None:
        p_meet = judged[picks.p_meet]
        if not meets(p_meet, target):
            return _flip(
                sel,
                p_meet,
                profile,
                f"on the selection cases {p_meet.label} meets the target, so prompting would be enough; "
                "on the confirmation cases it misses it",
            )
        cost_chosen = judged[picks.cost_chosen] if picks.cost_chosen is not None else None
        if cost_chosen is not None and not meets(cost_chosen, target):
            return _flip(
                sel,
                cost_chosen,
                profile,
                f"on the selection cases {cost_chosen.label} meets the target for less than {p_meet.label}, "
                "so fine-tuning would pay for itself; on the confirmation cases it misses the target",
            )
        return None
    best_p = judged[picks.best_p]
    if meets(best_p, target):
        return _flip(
            sel,
            best_p,
            profile,
            f"on the selection cases no {_prompting_word(prompting)} arm meets the target; on the "
            f"confirmation cases {best_p.label} does",
        )
    if picks.chosen is None:
        return None
    chosen = judged[picks.chosen]
    if meets(picked[picks.chosen], target) and not meets(chosen, target):
        if sel.compare(best_p, chosen).verdict == BETTER:
            return None  # still a fine-tune on the confirmation half, short of the target (a caveat)
        return _flip(
            sel,
            chosen,
            profile,
            f"on the selection cases {chosen.label} meets the target where no "
            f"{_prompting_word(prompting)} arm does, so fine-tuning would reach it; on the confirmation "
            "cases it misses the target and is not significantly better than "
            f"{best_p.label}",
        )
    return None


# --- picking and judging -----------------------------------------------------------------------------


def _cheapest(candidates: Sequence[ArmEvidence], profile: Profile) -> ArmEvidence:
    """The cheapest over the horizon (arms without a known cost last), then the best, then the
    fewest prompt tokens."""

    def key(a: ArmEvidence):
        cost = horizon_cost(a, profile)
        return (cost is None, cost or 0.0, -(a.mean or 0.0), a.prompt_tokens or 0.0, a.label)

    return min(candidates, key=key)


def _cheapest_meeting(arms: Sequence[ArmEvidence], profile: Profile) -> ArmEvidence | None:
    meeting = [a for a in arms if meets(a, profile.quality_target)]
    return _cheapest(meeting, profile) if meeting else None


def _best(arms: Sequence[ArmEvidence]) -> ArmEvidence | None:
    return max(arms, key=lambda a: (a.mean or 0.0, -(a.prompt_tokens or 0.0))) if arms else None


def _prompting_word(prompting: Sequence[ArmEvidence]) -> str:
    """'prompting', or 'prompting-or-retrieval' when a retrieval arm was measured with the prompts."""
    return "prompting-or-retrieval" if any(a.retrieval for a in prompting) else "prompting"


def _judge(sel: Selection, picks: _Picks, transitions, profile: Profile) -> Decision:
    """The verdict on the picked arms, as the judged cases show them."""
    target = profile.quality_target
    judged = sel.judged
    arms = list(judged.values())
    prompting = [a for a in arms if a.family == PROMPTING]
    tuned = [a for a in arms if a.family != PROMPTING]

    def get(key: str | None) -> ArmEvidence | None:
        return None if key is None else judged[key]

    best_p, p_meet = get(picks.best_p), get(picks.p_meet)
    if sel.rule == SPLIT and best_p is not None and (flip := _find_flip(sel, picks, profile)):
        return flip
    # From here on the confirmation half agrees with the selection half about every picked arm's
    # target (or both are the same cases): p_meet and cost_chosen meet the target, best_p does not
    # when p_meet is None.
    if p_meet is not None:
        cost_chosen = get(picks.cost_chosen)
        also = [judged[k] for k in picks.ft_meet if k != picks.cost_chosen and meets(judged[k], target)]
        return _when_prompting_meets(p_meet, cost_chosen, also, profile, sel)

    if best_p is None:  # only fine-tuned arms: nothing to weigh them against
        best_t = get(picks.chosen) or _best(tuned)
        return Decision(
            INCONCLUSIVE,
            TITLES[INCONCLUSIVE],
            f"No prompting arm was measured, so this run cannot say whether prompting is enough: run the "
            f"base model zero-shot and few-shot on this suite next to {best_t.label} ({_ci(best_t)}).",
            evidence=[f"{a.label} scores {_ci(a)}" for a in tuned],
        )

    # No prompting arm reaches the target.
    gap = (
        f"the best {_prompting_word(prompting)} arm, {best_p.label}, scores {_ci(best_p)}, below the "
        f"target {target:g}"
    )
    if not tuned:
        return _without_fine_tuned(best_p, prompting, transitions, profile, gap, sel)

    chosen = judged[picks.chosen]
    verdict = HYBRID_VERDICT if chosen.family == HYBRID else FINE_TUNE
    title = TITLES[verdict]
    if chosen.level == FINE_TUNED_RAG_LEVEL:
        title = "Fine-tune and keep retrieval (fine-tuned + RAG)"
    cmp = sel.compare(best_p, chosen)
    evidence = [gap]
    plateau = _plateau_line(best_p, transitions)
    if plateau:
        evidence.append(plateau)
    evidence.append(_comparison_line(best_p, chosen, cmp))
    better = cmp.verdict == BETTER
    where = "prompting and retrieval do not" if any(a.retrieval for a in prompting) else "prompting does not"
    if meets(chosen, target):
        certain = target_certainty(chosen, target) == "meets" and target_certainty(best_p, target) == "misses"
        if better or certain:
            d = Decision(
                verdict,
                title,
                f"{chosen.label} reaches the target ({_ci(chosen)} against {target:g}) where {where} "
                f"(best {best_p.label}: {_ci(best_p)}).",
                arm=chosen.label,
                evidence=evidence,
            )
            if chosen.family == HYBRID:
                d.evidence.append(_hybrid_line(chosen, get(picks.best_plain), target))
            if not plateau and _still_gaining(best_p, transitions):
                d.caveats.append(
                    "Prompting was still improving at its last step; untried strategies might close "
                    "part of the gap."
                )
            if target_certainty(chosen, target) == "uncertain":
                n = sel.settle(chosen, target)
                d.caveats.append(
                    f"{chosen.label}'s interval reaches below the target"
                    + (f"; about {n} cases would settle it." if n else ".")
                )
            return d
        needed = cmp.needed_cases
        return Decision(
            INCONCLUSIVE,
            TITLES[INCONCLUSIVE],
            f"{chosen.label} scores {_ci(chosen)} and the best {_prompting_word(prompting)} arm "
            f"{best_p.label} scores {_ci(best_p)}: their intervals overlap the target and each other, "
            "so this run cannot tell whether fine-tuning is needed"
            + (f"; about {needed} cases would tell them apart." if needed else "."),
            arm=chosen.label,
            evidence=evidence,
            cases_needed=needed,
        )

    # Neither prompting nor the fine-tuned models reach the target.
    if better:
        d = Decision(
            verdict,
            title,
            f"No arm reaches the target {target:g}, but {chosen.label} ({_ci(chosen)}) is significantly "
            f"better than the best {_prompting_word(prompting)} arm {best_p.label} ({_ci(best_p)}).",
            arm=chosen.label,
            evidence=evidence,
        )
        d.caveats.append(
            "The fine-tuned model is still below the target: more (or better) training examples, "
            "or a larger base model, are needed to reach it."
        )
        return d
    if profile.examples_available < MIN_FINE_TUNE_EXAMPLES:
        return _collect(profile, evidence, f"{chosen.label} ({_ci(chosen)}) did not close the gap")
    needed = cmp.needed_cases
    if cmp.verdict != WORSE and needed:
        return Decision(
            INCONCLUSIVE,
            TITLES[INCONCLUSIVE],
            f"No arm reaches the target {target:g}; {chosen.label} ({_ci(chosen)}) and "
            f"{best_p.label} ({_ci(best_p)}) cannot be told apart on this run: about {needed} cases "
            "would tell them apart.",
            arm=None,
            evidence=evidence,
            cases_needed=needed,
        )
    return _collect(
        profile,
        evidence,
        f"{chosen.label} ({_ci(chosen)}) is no better than prompting even with "
        f"{profile.examples_available:,} examples",
        more=True,
    )


def _when_prompting_meets(
    p_meet: ArmEvidence,
    chosen: ArmEvidence | None,
    also_meet: Sequence[ArmEvidence],
    profile: Profile,
    sel: Selection,
) -> Decision:
    """A prompting (or retrieval) arm meets the target: prompting is enough, unless a fine-tune that
    meets it too (`chosen`) costs less over the horizon."""
    target = profile.quality_target
    p_cost = horizon_cost(p_meet, profile)
    evidence = [
        f"{p_meet.label} scores {_ci(p_meet)}, meeting the target {target:g}, at "
        f"{_usd(cost_per_request(p_meet))} a request"
    ]
    if chosen is not None:
        c_cost = horizon_cost(chosen, profile)
        evidence.append(
            f"{chosen.label} also meets the target ({_ci(chosen)}) and costs {_usd(c_cost)} over "
            f"{profile.horizon_months:g} months against {_usd(p_cost)} for {p_meet.label}, "
            "training and retraining included"
        )
        d = Decision(
            FINE_TUNE_FOR_COST,
            TITLES[FINE_TUNE_FOR_COST],
            f"Both meet the target; {chosen.label} saves {_usd(p_cost - c_cost)} over the "
            f"{profile.horizon_months:g}-month horizon against {p_meet.label}.",
            arm=chosen.label,
            evidence=evidence,
        )
        cmp = sel.compare(p_meet, chosen)
        if cmp.verdict == WORSE:
            d.caveats.append(
                f"{chosen.label} scores significantly lower than {p_meet.label} "
                f"({_fmt(cmp.diff)}, p{_p(cmp.p_value)}) although both meet the target."
            )
        return d
    if p_meet.retrieval:
        title = f"{TITLES[PROMPTING_ENOUGH]} (retrieval)"
        summary = (
            f"Prompting is enough (retrieval): {p_meet.label}, a retrieval arm (the base model with "
            f"retrieved passages in its prompt, no training), meets the target ({_ci(p_meet)} against "
            f"{target:g}) and is the cheapest arm that does."
        )
    else:
        title = TITLES[PROMPTING_ENOUGH]
        summary = (
            f"{p_meet.label} meets the target ({_ci(p_meet)} against {target:g}) and is the cheapest "
            "arm that does."
        )
    d = Decision(PROMPTING_ENOUGH, title, summary, arm=p_meet.label, evidence=evidence)
    if p_meet.retrieval:
        d.evidence.append(
            f"{p_meet.label} is a retrieval arm: the verdict weighs fine-tuning against the best of "
            "prompting and retrieval, which needs no training"
        )
    for arm in also_meet:
        cost = horizon_cost(arm, profile)
        if cost is None or p_cost is None:
            d.evidence.append(
                f"{arm.label} also meets the target, but its cost over the horizon is unknown "
                "(prices or training cost missing), so it cannot be shown to be cheaper"
            )
        else:
            d.evidence.append(
                f"{arm.label} also meets the target but costs {_usd(cost)} over "
                f"{profile.horizon_months:g} months against {_usd(p_cost)}"
            )
    if p_cost is None:
        d.caveats.append(f"{p_meet.label}'s cost is unknown: set its endpoint's prices.")
    if target_certainty(p_meet, target) == "uncertain":
        n = sel.settle(p_meet, target)
        d.caveats.append(
            f"{p_meet.label}'s {_level_pct(sel.confidence(p_meet))} interval reaches below the target"
            + (f"; about {n} cases would settle whether it really meets it." if n else ".")
        )
        d.cases_needed = n
    return d


def _level_pct(confidence: float) -> str:
    return f"{confidence * 100:.4g}%"


def _without_fine_tuned(
    best_p, prompting, transitions, profile: Profile, gap: str, sel: Selection
) -> Decision:
    target = profile.quality_target
    evidence = [gap]
    tried = {a.strategy for a in prompting}
    if not tried & FEW_SHOT_KINDS:
        return _collect(
            profile,
            evidence,
            "few-shot prompting has not been tried yet: it is the cheapest next step and shows "
            "whether examples help at all",
        )
    if profile.examples_available < MIN_FINE_TUNE_EXAMPLES:
        return _collect(profile, evidence, "no fine-tuned model has been measured")
    plateau = _plateau_line(best_p, transitions)
    if target_certainty(best_p, target) == "uncertain":
        n = sel.settle(best_p, target)
        return Decision(
            INCONCLUSIVE,
            TITLES[INCONCLUSIVE],
            f"{best_p.label} scores {_ci(best_p)}: its interval contains the target {target:g}, so this "
            "run cannot tell whether prompting is enough"
            + (f"; about {n} cases would settle it." if n else "."),
            arm=best_p.label,
            evidence=evidence + ([plateau] if plateau else []),
            cases_needed=n,
        )
    untried = _untried_steps(prompting, knowledge=profile.knowledge)
    if plateau or not untried:
        how = "has stopped improving" if plateau else "every prompting step has been tried"
        if not plateau and not profile.knowledge and not any(a.retrieval for a in prompting):
            how += " (retrieval aside: the suite has no knowledge documents)"
        d = Decision(
            FINE_TUNE,
            TITLES[FINE_TUNE],
            f"Prompting falls short ({_ci(best_p)} against {target:g}) and {how}; with "
            f"{profile.examples_available:,} examples, fine-tune and evaluate the fine-tuned model on this "
            "suite to confirm.",
            arm=None,
            evidence=[*evidence, plateau or _last_step_line(best_p, transitions)],
        )
        d.caveats.append(
            "No fine-tuned model has been measured yet: this is a recommendation to try, not a "
            "measured result. Register the fine-tuned endpoint and run the suite again."
        )
        return d
    steps = _prompting_steps(best_p, transitions)
    why = (
        "still improving at its last step"
        if steps
        else "only one prompting step was measured, so there is no trend to read"
    )
    return Decision(
        INCONCLUSIVE,
        TITLES[INCONCLUSIVE],
        f"Prompting is below the target ({_ci(best_p)} against {target:g}) and {why}; try "
        f"{', '.join(untried)} before deciding to fine-tune.",
        arm=best_p.label,
        evidence=[*evidence, _last_step_line(best_p, transitions)],
    )


def _collect(profile: Profile, evidence: list[str], why: str, *, more: bool = False) -> Decision:
    n = profile.examples_available
    if more:
        summary = f"{why}: collect more (or better) labelled examples before fine-tuning again."
    elif n < MIN_FINE_TUNE_EXAMPLES:
        summary = (
            f"Prompting falls short and {why}; with {n:,} labelled examples (about "
            f"{MIN_FINE_TUNE_EXAMPLES} are needed to fine-tune) collect more data first."
        )
    else:
        summary = f"Prompting falls short and {why}. Try it before fine-tuning."
    return Decision(COLLECT_MORE_DATA, TITLES[COLLECT_MORE_DATA], summary, evidence=[*evidence, why])


def rung_name(level: int) -> str:
    """A ladder step's name inside a sentence: 'few-shot (nearest)', 'retrieval (RAG)'."""
    label = LEVELS[level][1]
    return label[0].lower() + label[1:]


def _untried_steps(prompting: Sequence[ArmEvidence], *, knowledge: bool = True) -> list[str]:
    """The prompting-or-retrieval rungs no arm measured and that can be run, cheapest first: without
    knowledge documents a retrieval run is refused, so retrieval is not one of them."""
    levels = {a.level for a in prompting}
    runnable = [lv for lv in range(RETRIEVAL_LEVEL + 1) if knowledge or lv != RETRIEVAL_LEVEL]
    return [rung_name(lv) for lv in runnable if lv not in levels]


def unmeasured_rungs(prompting: Sequence[ArmEvidence]) -> list[str]:
    """The prompting-or-retrieval rungs above zero-shot that no arm measured, strongest first."""
    levels = {a.level for a in prompting}
    return [rung_name(lv) for lv in range(RETRIEVAL_LEVEL, 0, -1) if lv not in levels]


NO_KNOWLEDGE = "the suite has no knowledge documents; add them (import_knowledge, the suite page) to try it"


def unmeasured_line(prompting: Sequence[ArmEvidence], *, knowledge: bool = True) -> str | None:
    """The caveat naming the stronger rungs that were not measured (None when all were). Without
    knowledge documents (`knowledge` False) it says that retrieval cannot be run until they are added."""
    names = unmeasured_rungs(prompting)
    if not names:
        return None
    no_rag = not knowledge and names[0] == rung_name(RETRIEVAL_LEVEL)
    if len(names) == 1:
        name = names[0][0].upper() + names[0][1:]
        if no_rag:
            return f"{name} was not measured, so this verdict is drawn without it: {NO_KNOWLEDGE}."
        return (
            f"{name} was not measured: this verdict is drawn without it, and it might do better than "
            "the prompts that were. Run it before relying on the verdict."
        )
    listed = ", ".join(names[:-1]) + f" and {names[-1]}"
    line = (
        f"{listed[0].upper() + listed[1:]} were not measured (strongest first): this verdict is drawn "
        "without them, and they might do better than the prompts that were. Run them before relying "
        "on the verdict."
    )
    if no_rag:
        line += f" For retrieval (RAG), {NO_KNOWLEDGE}."
    return line


def _plateau_line(best_p: ArmEvidence | None, transitions: dict[str, list[dict]]) -> str:
    """Describe the last prompting step when it gave no significant gain ('' otherwise)."""
    steps = _prompting_steps(best_p, transitions)
    if not steps:
        return ""
    last = steps[-1]
    cmp: Comparison = last["comparison"]
    if cmp.verdict == BETTER:
        return ""
    return (
        f"prompting has plateaued: the last step, {last['from'].label} -> {last['to'].label}, changed "
        f"the score by {_fmt(cmp.diff)} (p{_p(cmp.p_value)}, not a significant gain)"
    )


def _still_gaining(best_p: ArmEvidence, transitions) -> bool:
    steps = _prompting_steps(best_p, transitions)
    return bool(steps) and steps[-1]["comparison"].verdict == BETTER


def _last_step_line(best_p: ArmEvidence, transitions) -> str:
    steps = _prompting_steps(best_p, transitions)
    if not steps:
        return "only one prompting step was measured"
    last = steps[-1]
    cmp = last["comparison"]
    return (
        f"the last step, {last['from'].label} -> {last['to'].label}, gained {_fmt(cmp.diff)} "
        f"(p{_p(cmp.p_value)})"
    )


def _prompting_steps(best_p: ArmEvidence | None, transitions) -> list[dict]:
    if best_p is None:
        return []
    return [t for t in transitions.get(best_p.base, []) if t["to"].family == PROMPTING]


def _comparison_line(a: ArmEvidence, b: ArmEvidence, cmp: Comparison) -> str:
    low, high = cmp.diff_ci
    adjusted = ", Bonferroni-adjusted" if "Bonferroni" in cmp.test else ""
    return (
        f"{b.label} against {a.label}: {'+' if (cmp.diff or 0) >= 0 else ''}{_fmt(cmp.diff)} "
        f"[{_fmt(low)}, {_fmt(high)}] on {cmp.n} paired cases, p{_p(cmp.p_value)}{adjusted} ({cmp.verdict})"
    )


def _hybrid_line(chosen: ArmEvidence, best_plain: ArmEvidence | None, target: float) -> str:
    if best_plain is None:
        return f"no fine-tuned arm without a prompt was measured; {chosen.label} reaches the target with one"
    return (
        f"the fine-tuned model alone ({best_plain.label}: {_ci(best_plain)}) does not reach the "
        f"target {target:g}; with a prompt it does"
    )


# --- break-even between the two options the team is choosing between -------------------------


def _add_break_even(d: Decision, prompting, tuned, profile: Profile, ref: ArmEvidence | None = None) -> None:
    """Compare the prompting arm the team would ship (`ref`: the one the verdict picked, the cheapest
    meeting the target, else the best) with the fine-tuned arm the verdict names (else the cheapest
    meeting the target, else the best)."""
    if not prompting or not tuned:
        reason = (
            "No fine-tuned arm was measured in this run, so there is no break-even to compute: register "
            "a fine-tuned endpoint and run it with the suite."
            if not tuned
            else "No prompting arm was measured in this run, so there is nothing to break even against."
        )
        d.break_even = {"available": False, "reason": reason}
        if not tuned:
            d.evidence.append("no fine-tuned arm was measured, so there is no break-even to compute")
        return
    named = [a for a in tuned if a.label == d.arm]
    ft = named[0] if named else (_cheapest_meeting(tuned, profile) or _best(tuned))
    # A distilled student replaces its teacher: the teacher's cost per request is what it saves.
    teacher = [a for a in prompting if ft.distilled_from is not None and a.key == ft.distilled_from]
    ref = teacher[0] if teacher else (ref or _cheapest_meeting(prompting, profile) or _best(prompting))
    c_p, c_f = cost_per_request(ref), cost_per_request(ft)
    measured_prompt = (
        profile.measured_endpoint is not None
        and ref.endpoint == profile.measured_endpoint
        and profile.measured_prompt_tokens is not None
    )
    if measured_prompt:  # what production's own requests cost on this endpoint, not the suite's cases
        # Production's inputs are longer (or shorter) than the suite's by as many tokens for the
        # fine-tuned model too (it gets the input without the prompt's instructions).
        if ft.prompt_tokens is not None and ref.prompt_tokens is not None:
            extra = profile.measured_prompt_tokens - ref.prompt_tokens
            c_f = cost_per_request(replace(ft, prompt_tokens=max(0.0, ft.prompt_tokens + extra)))
        c_p = cost_per_request(
            replace(
                ref,
                prompt_tokens=profile.measured_prompt_tokens,
                completion_tokens=profile.measured_completion_tokens
                if profile.measured_completion_tokens is not None
                else ref.completion_tokens,
            )
        )
    train, source = training_cost(ft, profile)
    info: dict = {
        "prompting_arm": ref.label,
        "fine_tuned_arm": ft.label,
        "prompting_cost_per_request": c_p,
        "fine_tuned_cost_per_request": c_f,
        "prompt_tokens_saved": None,
        "prompt_tokens_saved_pct": None,
        "training_cost_source": source,
        "distilled": bool(teacher),
        "data_cost": ft.data_cost or None,
        "prompting_cost_measured": measured_prompt,
    }
    if ref.prompt_tokens is not None and ft.prompt_tokens is not None:
        saved = ref.prompt_tokens - ft.prompt_tokens
        info["prompt_tokens_saved"] = saved
        info["prompt_tokens_saved_pct"] = saved / ref.prompt_tokens * 100 if ref.prompt_tokens else None
    missing = []
    if c_p is None:
        missing.append(f"{ref.label}'s prices")
    if c_f is None:
        missing.append(f"{ft.label}'s prices")
    if train is None:
        missing.append(f"{ft.label}'s training cost ({source.removeprefix('unknown: ')})")
    if missing:
        info["available"] = False
        info["reason"] = "Break-even cannot be computed without " + " and ".join(missing) + "."
        d.break_even = info
        d.caveats.append(info["reason"])
        return
    be = break_even(
        saving_per_request=c_p - c_f,
        requests_per_month=profile.monthly_volume,
        training_cost=train,
        horizon_months=profile.horizon_months,
        retrains_per_year=profile.retrains_per_year,
        hosting_per_month=ft.prices.hosting_monthly - ref.prices.hosting_monthly,
    )
    info.update(be.to_dict(), available=True)
    d.break_even = info
    curves = cumulative_costs(
        prompting_per_month=c_p * profile.monthly_volume + ref.prices.hosting_monthly,
        fine_tuned_per_month=c_f * profile.monthly_volume + ft.prices.hosting_monthly,
        training_cost=train,
        horizon_months=profile.horizon_months,
        retrains_per_year=profile.retrains_per_year,
    )
    d.curves = curves.to_dict()
    if measured_prompt:
        d.evidence.append(
            f"{ref.label}'s cost per request ({_usd(c_p)}) is taken at the tokens production sends it: "
            f"{profile.measured_prompt_tokens:,.0f} prompt tokens a request on average over "
            f"{profile.measured_calls:,} captured calls in {profile.measured_days:,.1f} days"
        )
    if teacher:
        d.evidence.append(
            f"{ft.label} was distilled from {ref.label}: the teacher's cost per request "
            f"({_usd(c_p)}) is the prompting cost it saves"
            + (f", and making its training data ({_usd(ft.data_cost)}: the teacher's labelling run"
               " and any synthetic generation) is part of its training cost" if ft.data_cost else "")
        )  # fmt: skip
    if source == "estimated":
        d.caveats.append(
            f"{ft.label}'s training cost is an estimate ({_usd(train)}: "
            f"{profile.examples_available:,} examples x {_fmt(profile.train_tokens_per_example, 0)} tokens x "
            f"{profile.training_epochs} epochs at {_usd(profile.training_price_per_1m)} per 1M tokens)."
        )
    if be.break_even_requests is None or be.break_even_days is None:
        d.evidence.append(f"{ft.label} against {ref.label}: {be.reason}")
    else:
        d.evidence.append(
            f"{ft.label} saves {_usd(be.saving_per_request)} a request against {ref.label} "
            f"({_usd(be.monthly_saving)} a month); its training and retraining within the horizon "
            f"({_usd(be.training_cost + be.retrains * be.retraining_cost)})"
            + (f" and extra hosting ({_usd(be.hosting_per_month)} a month)" if be.hosting_per_month else "")
            + f" are paid back after {be.break_even_requests:,.0f} requests, {be.break_even_days:,.1f} days "
            + ("(within" if be.pays_back_within_horizon else "(beyond")
            + f" the {profile.horizon_months:g}-month horizon)"
        )


# --- the hand-made checklist, next to the measured answer -------------------------------------


def checklist(profile: Profile, d: Decision | None, cheapest_meeting: ArmEvidence | None) -> list[dict]:
    """The questions teams answer by hand (urgency, examples, change rate, budget), what each
    points to, and the measured answer next to it."""
    items = []
    urgency = profile.urgency
    items.append(
        {
            "question": "How urgent is it?",
            "answer": URGENCY.get(urgency, urgency),
            "points_to": PROMPTING if urgency == "now" else "either",
            "why": "a prompt ships today; a fine-tune needs data preparation, training and evaluation"
            if urgency == "now"
            else "there is time to train and evaluate a fine-tuned model",
        }
    )
    n = profile.examples_available
    items.append(
        {
            "question": "How many labelled examples are there?",
            "answer": f"{n:,}",
            "points_to": "fine-tuning" if n >= MIN_FINE_TUNE_EXAMPLES else PROMPTING,
            "why": f"about {MIN_FINE_TUNE_EXAMPLES} or more are needed to fine-tune reliably",
        }
    )
    r = profile.retrains_per_year
    items.append(
        {
            "question": "How often does the task change?",
            "answer": f"{r:g} times a year" if r else "rarely (no retraining planned)",
            "points_to": PROMPTING if r >= 12 else ("either" if r >= 4 else "fine-tuning"),
            "why": "every change means retraining a fine-tuned model, but only editing a prompt",
        }
    )
    budget = profile.monthly_budget
    if budget is None:
        items.append(
            {
                "question": "What is the monthly budget?",
                "answer": "not set",
                "points_to": "either",
                "why": "set a budget on the profile to check the arms against it",
            }
        )
    else:
        monthly = None
        if cheapest_meeting is not None and (c := cost_per_request(cheapest_meeting)) is not None:
            monthly = c * profile.monthly_volume + cheapest_meeting.prices.hosting_monthly
        fits = monthly is not None and monthly <= budget
        items.append(
            {
                "question": "What is the monthly budget?",
                "answer": _usd(budget),
                "points_to": PROMPTING if fits else "fine-tuning" if monthly is not None else "either",
                "why": (
                    f"the cheapest prompting arm meeting the target costs {_usd(monthly)} a month"
                    if monthly is not None
                    else "no priced prompting arm meets the target yet"
                ),
            }
        )
    votes = [i["points_to"] for i in items if i["points_to"] != "either"]
    by_hand = "either"
    if votes:
        p, f = votes.count(PROMPTING), votes.count("fine-tuning")
        by_hand = PROMPTING if p > f else "fine-tuning" if f > p else "either"
    measured = None
    if d is not None:
        measured = {
            PROMPTING_ENOUGH: PROMPTING,
            FINE_TUNE: "fine-tuning",
            FINE_TUNE_FOR_COST: "fine-tuning",
            HYBRID_VERDICT: "fine-tuning",
        }.get(d.verdict)
    items.append(
        {
            "question": "By hand, the checklist points to",
            "answer": by_hand,
            "points_to": by_hand,
            "why": (
                "the measured answer agrees"
                if measured == by_hand
                else f"the measured answer says {measured}"
                if measured
                else "the measurements do not settle it yet"
            ),
        }
    )
    return items
