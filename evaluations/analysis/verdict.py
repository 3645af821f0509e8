"""Is prompting enough, or does fine-tuning pay off? The ladder, the cost model and the verdict.

Pure functions over measured arms (no Django). The method, its formulas and assumptions are in
docs/decision.md; in short:

- Arms sit on a ladder per base model: zero-shot -> few-shot -> system/structured ->
  chain-of-thought -> fine-tuned -> hybrid (a fine-tuned model with a prompting strategy). Each
  step is compared with the best arm of the step below it, paired on cases.
- Cost per request comes from measured tokens (and compute seconds) x the endpoint's current
  prices; an endpoint without prices has an unknown cost, never a zero one.
- An arm meets the target when its mean score reaches it; whether that is certain is told by its
  95% interval, and the verdict says so when it is not.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import stats

from evaluations.analysis.compare import Comparison, compare_scores
from evaluations.analysis.costs import break_even, cumulative_costs, per_request_cost, retrains_in

PROMPTING, FINE_TUNED, HYBRID = "prompting", "fine_tuned", "hybrid"

# Ladder levels, in order. Base-model `plain` prompts sit with zero-shot.
LEVELS = (
    ("zero-shot", "Zero-shot"),
    ("few-shot", "Few-shot"),
    ("system", "System prompt / structured output"),
    ("cot", "Chain-of-thought"),
    ("fine-tuned", "Fine-tuned"),
    ("hybrid", "Hybrid (fine-tuned + prompt)"),
)
_LEVEL_OF = {
    "zero-shot": 0, "plain": 0, "few-shot": 1, "few-shot-nearest": 1, "system": 2, "structured": 2, "cot": 3,
}  # fmt: skip

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
    scores: Mapping[str, float] = field(default_factory=dict)  # per case key (mean of its samples)

    @property
    def level(self) -> int:
        if self.family == FINE_TUNED:
            return 4
        if self.family == HYBRID:
            return 5
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
        return arm.training_cost, "set"
    if not profile.train_tokens_per_example or not profile.examples_available:
        return None, "unknown: set the training cost on the endpoint, or add a train split to estimate it"
    if not profile.training_price_per_1m:
        return None, "unknown: set a price per 1M training tokens to estimate it"
    tokens = profile.train_tokens_per_example * profile.examples_available * profile.training_epochs
    return tokens * profile.training_price_per_1m / 1_000_000, "estimated"


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
                "training_cost_source": train_source if arm.family != PROMPTING else None,
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


def cases_to_settle_target(arm: ArmEvidence, target: float) -> int | None:
    """Cases for the 95% interval to stop straddling the target: n = (1.96 sd / |mean - target|)^2."""
    values = np.asarray(list(arm.scores.values()), dtype=float)
    if arm.mean is None or values.size < 2 or arm.mean == target:
        return None
    sd = float(values.std(ddof=1))
    if sd == 0:
        return None
    z = float(stats.norm.ppf(0.975))
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
        d.checklist = checklist(profile, None, None)
        return d
    ladder_rows, transitions = build_ladder(arms)
    costs = cost_table(arms, profile)
    prompting = [a for a in arms if a.family == PROMPTING]
    tuned = [a for a in arms if a.family != PROMPTING]
    d = _verdict(arms, prompting, tuned, transitions, profile)
    d.ladder, d.costs, d.profile = ladder_rows, costs, profile_dict
    d.caveats = notes + d.caveats
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
    _add_break_even(d, prompting, tuned, profile)
    d.checklist = checklist(profile, d, _cheapest_meeting(prompting, profile))
    return d


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


def _verdict(arms, prompting, tuned, transitions, profile: Profile) -> Decision:
    target = profile.quality_target
    best_p = _best(prompting)
    p_meet = _cheapest_meeting(prompting, profile)
    if p_meet is not None:
        return _when_prompting_meets(p_meet, prompting, tuned, profile)

    if best_p is None:  # only fine-tuned arms: nothing to weigh them against
        best_t = _best(tuned)
        return Decision(
            INCONCLUSIVE,
            TITLES[INCONCLUSIVE],
            f"No prompting arm was measured, so this run cannot say whether prompting is enough: run the "
            f"base model zero-shot and few-shot on this suite next to {best_t.label} ({_ci(best_t)}).",
            evidence=[f"{a.label} scores {_ci(a)}" for a in tuned],
        )

    # No prompting arm reaches the target.
    gap = f"the best prompting arm, {best_p.label}, scores {_ci(best_p)}, below the target {target:g}"
    if not tuned:
        return _without_fine_tuned(best_p, prompting, transitions, profile, gap)

    ft_meet = [a for a in tuned if meets(a, target)]
    plain_meet = [a for a in ft_meet if a.family == FINE_TUNED]
    # A plain fine-tune that meets the target is preferred to one that needs a prompt as well.
    chosen = _cheapest(plain_meet or ft_meet, profile) if ft_meet else _best(tuned)
    verdict = HYBRID_VERDICT if chosen.family == HYBRID else FINE_TUNE
    cmp = compare(best_p, chosen)
    evidence = [gap]
    plateau = _plateau_line(best_p, transitions)
    if plateau:
        evidence.append(plateau)
    evidence.append(_comparison_line(best_p, chosen, cmp))
    better = cmp.verdict == "better"
    if meets(chosen, target):
        certain = target_certainty(chosen, target) == "meets" and target_certainty(best_p, target) == "misses"
        if better or certain:
            d = Decision(
                verdict,
                TITLES[verdict],
                f"{chosen.label} reaches the target ({_ci(chosen)} against {target:g}) where prompting "
                f"does not (best {best_p.label}: {_ci(best_p)}).",
                arm=chosen.label,
                evidence=evidence,
            )
            if chosen.family == HYBRID:
                d.evidence.append(_hybrid_line(chosen, tuned, target))
            if not plateau and _still_gaining(best_p, transitions):
                d.caveats.append(
                    "Prompting was still improving at its last step; untried strategies might close "
                    "part of the gap."
                )
            if target_certainty(chosen, target) == "uncertain":
                n = cases_to_settle_target(chosen, target)
                d.caveats.append(
                    f"{chosen.label}'s interval reaches below the target"
                    + (f"; about {n} cases would settle it." if n else ".")
                )
            return d
        needed = cmp.needed_cases
        return Decision(
            INCONCLUSIVE,
            TITLES[INCONCLUSIVE],
            f"{chosen.label} scores {_ci(chosen)} and the best prompting arm {best_p.label} scores "
            f"{_ci(best_p)}: their intervals overlap the target and each other, so this run cannot "
            "tell whether fine-tuning is needed"
            + (f"; about {needed} cases would tell them apart." if needed else "."),
            arm=chosen.label,
            evidence=evidence,
            cases_needed=needed,
        )

    # Neither prompting nor the fine-tuned models reach the target.
    if better:
        d = Decision(
            verdict,
            TITLES[verdict],
            f"No arm reaches the target {target:g}, but {chosen.label} ({_ci(chosen)}) is significantly "
            f"better than the best prompting arm {best_p.label} ({_ci(best_p)}).",
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
    if cmp.verdict != "worse" and needed:
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


def _when_prompting_meets(p_meet, prompting, tuned, profile: Profile) -> Decision:
    target = profile.quality_target
    p_cost = horizon_cost(p_meet, profile)
    evidence = [
        f"{p_meet.label} scores {_ci(p_meet)}, meeting the target {target:g}, at "
        f"{_usd(cost_per_request(p_meet))} a request"
    ]
    ft_meet = [a for a in tuned if meets(a, target)]
    cheaper = [
        a
        for a in ft_meet
        if p_cost is not None and (c := horizon_cost(a, profile)) is not None and c < p_cost
    ]
    if cheaper:
        chosen = _cheapest(cheaper, profile)
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
        cmp = compare(p_meet, chosen)
        if cmp.verdict == "worse":
            d.caveats.append(
                f"{chosen.label} scores significantly lower than {p_meet.label} "
                f"({_fmt(cmp.diff)}, p{_p(cmp.p_value)}) although both meet the target."
            )
        return d
    d = Decision(
        PROMPTING_ENOUGH,
        TITLES[PROMPTING_ENOUGH],
        f"{p_meet.label} meets the target ({_ci(p_meet)} against {target:g}) and is the cheapest "
        "arm that does.",
        arm=p_meet.label,
        evidence=evidence,
    )
    for arm in ft_meet:
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
        n = cases_to_settle_target(p_meet, target)
        d.caveats.append(
            f"{p_meet.label}'s 95% interval reaches below the target"
            + (f"; about {n} cases would settle whether it really meets it." if n else ".")
        )
        d.cases_needed = n
    return d


def _without_fine_tuned(best_p, prompting, transitions, profile: Profile, gap: str) -> Decision:
    target = profile.quality_target
    evidence = [gap]
    tried = {a.strategy for a in prompting}
    if not tried & {"few-shot", "few-shot-nearest"}:
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
        n = cases_to_settle_target(best_p, target)
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
    untried = _untried_steps(prompting)
    if plateau or not untried:
        how = "has stopped improving" if plateau else "every prompting step has been tried"
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


def _untried_steps(prompting: Sequence[ArmEvidence]) -> list[str]:
    levels = {a.level for a in prompting}
    return [LEVELS[lv][1].lower() for lv in range(4) if lv not in levels]


def _plateau_line(best_p: ArmEvidence | None, transitions: dict[str, list[dict]]) -> str:
    """Describe the last prompting step when it gave no significant gain ('' otherwise)."""
    steps = _prompting_steps(best_p, transitions)
    if not steps:
        return ""
    last = steps[-1]
    cmp: Comparison = last["comparison"]
    if cmp.verdict == "better":
        return ""
    return (
        f"prompting has plateaued: the last step, {last['from'].label} -> {last['to'].label}, changed "
        f"the score by {_fmt(cmp.diff)} (p{_p(cmp.p_value)}, not a significant gain)"
    )


def _still_gaining(best_p: ArmEvidence, transitions) -> bool:
    steps = _prompting_steps(best_p, transitions)
    return bool(steps) and steps[-1]["comparison"].verdict == "better"


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
    return (
        f"{b.label} against {a.label}: {'+' if (cmp.diff or 0) >= 0 else ''}{_fmt(cmp.diff)} "
        f"[{_fmt(low)}, {_fmt(high)}] on {cmp.n} paired cases, p{_p(cmp.p_value)} ({cmp.verdict})"
    )


def _hybrid_line(chosen: ArmEvidence, tuned: Sequence[ArmEvidence], target: float) -> str:
    plain = [a for a in tuned if a.family == FINE_TUNED]
    if not plain:
        return f"no fine-tuned arm without a prompt was measured; {chosen.label} reaches the target with one"
    best_plain = _best(plain)
    return (
        f"the fine-tuned model alone ({best_plain.label}: {_ci(best_plain)}) does not reach the "
        f"target {target:g}; with a prompt it does"
    )


# --- break-even between the two options the team is choosing between -------------------------


def _add_break_even(d: Decision, prompting, tuned, profile: Profile) -> None:
    """Compare the prompting arm the team would ship (the cheapest meeting the target, else the best)
    with the fine-tuned arm the verdict names (else the cheapest meeting the target, else the best)."""
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
    ref = _cheapest_meeting(prompting, profile) or _best(prompting)
    named = [a for a in tuned if a.label == d.arm]
    ft = named[0] if named else (_cheapest_meeting(tuned, profile) or _best(tuned))
    c_p, c_f = cost_per_request(ref), cost_per_request(ft)
    train, source = training_cost(ft, profile)
    info: dict = {
        "prompting_arm": ref.label,
        "fine_tuned_arm": ft.label,
        "prompting_cost_per_request": c_p,
        "fine_tuned_cost_per_request": c_f,
        "prompt_tokens_saved": None,
        "prompt_tokens_saved_pct": None,
        "training_cost_source": source,
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
