"""The verdict on measured arms, without a database: the ladder with retrieval and optimised
few-shot, the caveat naming the rungs not measured, and selection and confirmation (arms picked on
one half of the cases, reported on the other)."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import pytest

from evaluations.analysis import verdict as V
from evaluations.analysis.selection import (
    CONFIRMATION,
    MIN_HALF_CASES,
    SELECTION,
    bonferroni,
    case_half,
    split_keys,
)
from evaluations.analysis.stats import bootstrap_mean_ci

N = 200
PROFILE = V.Profile(quality_target=0.8, monthly_volume=100_000, examples_available=1000)


def keys(n: int = N) -> list[str]:
    return [f"case-{i:04d}" for i in range(n)]


def scores(rate: float, seed: int, n: int = N) -> dict[str, float]:
    """Pass/fail per case: exactly round(rate x n) right, which ones depending on the seed."""
    right = set(np.random.default_rng(seed).choice(n, size=round(rate * n), replace=False).tolist())
    return {k: 1.0 if i in right else 0.0 for i, k in enumerate(keys(n))}


def arm(label: str, strategy: str, per_case: dict[str, float], *, family: str = V.PROMPTING,
        prompt_tokens: float = 100, training_cost: float | None = None) -> V.ArmEvidence:  # fmt: skip
    mean, low, high = bootstrap_mean_ci(list(per_case.values()))
    return V.ArmEvidence(
        key=label,
        label=label,
        endpoint=label.split(" · ")[0],
        strategy=strategy,
        family=family,
        base="base",
        mean=mean,
        ci=(low, high),
        scores=per_case,
        cases=len(per_case),
        results=len(per_case),
        prompt_tokens=prompt_tokens,
        completion_tokens=5,
        prices=V.Prices(price_in=1.0, price_out=2.0),
        training_cost=training_cost,
    )


def tuned(label: str, strategy: str, per_case, **kw) -> V.ArmEvidence:
    family = V.FINE_TUNED if strategy in ("plain", "zero-shot") else V.HYBRID
    return arm(label, strategy, per_case, family=family, prompt_tokens=kw.pop("prompt_tokens", 40), **kw)


# --- the ladder --------------------------------------------------------------------------------


def test_the_ladder_runs_from_zero_shot_through_retrieval_to_fine_tuned_and_rag():
    per_case = scores(0.5, 0)
    kinds = ["zero-shot", "few-shot", "few-shot-nearest", "few-shot-optimized", "system", "structured",
             "cot", "rag", "rag+few-shot-nearest", "plain", "template"]  # fmt: skip
    levels = {k: arm(f"b · {k}", k, per_case).level for k in kinds}
    assert levels == {
        "zero-shot": 0, "plain": 0, "template": 0, "few-shot": 1, "few-shot-nearest": 2,
        "few-shot-optimized": 3, "system": 4, "structured": 4, "cot": 5, "rag": 6, "rag+few-shot-nearest": 6,
    }  # fmt: skip
    assert tuned("t · plain", "plain", per_case).level == V.FINE_TUNED_LEVEL == 7
    assert tuned("t · few-shot", "few-shot", per_case).level == V.HYBRID_LEVEL == 8
    # A fine-tuned endpoint with a retrieval strategy: fine-tuned + RAG, the top of the ladder.
    assert tuned("t · rag", "rag", per_case).level == V.FINE_TUNED_RAG_LEVEL == 9
    assert tuned("t · rag+nn", "rag+few-shot-nearest", per_case).level == 9
    assert [label for _, label in V.LEVELS] == [
        "Zero-shot", "Few-shot (random)", "Few-shot (nearest)", "Few-shot (optimised)",
        "System prompt / structured output", "Chain-of-thought", "Retrieval (RAG)", "Fine-tuned",
        "Hybrid (fine-tuned + prompt)", "Fine-tuned + RAG",
    ]  # fmt: skip


def test_a_rag_arm_meeting_the_target_makes_prompting_enough_when_the_fine_tune_is_no_better():
    arms = [
        arm("base · zero-shot", "zero-shot", scores(0.55, 1)),
        arm("base · few-shot", "few-shot", scores(0.65, 2), prompt_tokens=500),
        arm("base · rag", "rag", scores(0.90, 3), prompt_tokens=900),
        tuned("tuned · plain", "plain", scores(0.90, 4), training_cost=100_000),
    ]
    d = V.decide(arms, PROFILE)
    assert d.verdict == V.PROMPTING_ENOUGH  # the code is unchanged; the wording names retrieval
    assert d.arm == "base · rag"
    assert d.title == "Prompting is enough (retrieval)"
    assert d.summary.startswith("Prompting is enough (retrieval): base · rag, a retrieval arm")
    assert any("tuned · plain also meets the target but costs" in e for e in d.evidence)
    assert d.selection["rule"] == "split"


def test_only_the_fine_tune_reaching_the_target_beats_the_best_prompting_or_retrieval_arm():
    arms = [
        arm("base · zero-shot", "zero-shot", scores(0.40, 1)),
        arm("base · few-shot-nearest", "few-shot-nearest", scores(0.50, 2), prompt_tokens=500),
        arm("base · rag", "rag", scores(0.62, 3), prompt_tokens=900),
        tuned("tuned · plain", "plain", scores(0.93, 4), training_cost=50),
    ]
    d = V.decide(arms, PROFILE)
    assert d.verdict == V.FINE_TUNE and d.arm == "tuned · plain"
    assert "where prompting and retrieval do not (best base · rag" in d.summary
    assert any(e.startswith("the best prompting-or-retrieval arm, base · rag,") for e in d.evidence)
    assert any("tuned · plain against base · rag" in e and "(better)" in e for e in d.evidence)


def test_a_fine_tune_with_retrieval_is_named_as_fine_tuned_plus_rag():
    arms = [
        arm("base · few-shot", "few-shot", scores(0.45, 1)),
        arm("base · rag", "rag", scores(0.55, 2)),
        tuned("tuned · plain", "plain", scores(0.60, 3), training_cost=50),
        tuned("tuned · rag", "rag", scores(0.95, 4), training_cost=50),
    ]
    d = V.decide(arms, PROFILE)
    assert d.verdict == V.HYBRID_VERDICT and d.arm == "tuned · rag"
    assert d.title == "Fine-tune and keep retrieval (fine-tuned + RAG)"
    assert d.ladder[-1]["arm"] == "tuned · rag" and d.ladder[-1]["step"] == "Fine-tuned + RAG"


def test_any_few_shot_kind_counts_as_few_shot_tried():
    for kind in ("few-shot-nearest", "few-shot-optimized", "rag+few-shot-nearest"):
        arms = [
            arm("base · zero-shot", "zero-shot", scores(0.3, 1)),
            arm(f"b · {kind}", kind, scores(0.4, 2)),
        ]
        d = V.decide(arms, PROFILE)
        assert "few-shot prompting has not been tried" not in d.summary, kind
    d = V.decide(
        [arm("base · zero-shot", "zero-shot", scores(0.3, 1)), arm("b · rag", "rag", scores(0.4, 2))], PROFILE
    )
    assert d.verdict == V.COLLECT_MORE_DATA and "few-shot prompting has not been tried" in d.summary


# --- the rungs not measured --------------------------------------------------------------------


def test_a_fine_tune_verdict_without_nearest_few_shot_names_it_as_not_measured():
    # Every rung but few-shot (nearest), plateaued well below the target; no fine-tune measured.
    rungs = [("zero-shot", 0.40), ("few-shot", 0.50), ("few-shot-optimized", 0.55), ("system", 0.56),
             ("cot", 0.57), ("rag", 0.57)]  # fmt: skip
    arms = [arm(f"base · {k}", k, scores(rate, i)) for i, (k, rate) in enumerate(rungs)]
    d = V.decide(arms, PROFILE)
    assert d.verdict == V.FINE_TUNE
    assert any(
        c.startswith("Few-shot (nearest) was not measured: this verdict is drawn without it")
        for c in d.caveats
    )
    # With the strongest rungs missing too, they are named strongest first.
    d = V.decide(arms[:2], PROFILE)
    assert any(
        c.startswith(
            "Retrieval (RAG), chain-of-thought, system prompt / structured output, few-shot (optimised) "
            "and few-shot (nearest) were not measured (strongest first)"
        )
        for c in d.caveats
    )


def test_prompting_enough_needs_no_caveat_about_rungs_not_measured():
    arms = [
        arm("base · zero-shot", "zero-shot", scores(0.6, 1)),
        arm("base · few-shot", "few-shot", scores(0.95, 2)),
    ]
    d = V.decide(arms, PROFILE)
    assert d.verdict == V.PROMPTING_ENOUGH
    assert not any("not measured" in c for c in d.caveats)


# --- selection and confirmation --------------------------------------------------------------


def test_the_split_is_a_stable_hash_of_the_case_key():
    # SHA-256, not Python's per-process hash(): the same halves in every process and every run.
    assert [case_half(f"case-{i:04d}") for i in range(12)] == [0, 0, 0, 0, 1, 1, 0, 0, 0, 1, 0, 1]
    for key in keys(50):
        digest = hashlib.sha256(b"ftvp-verdict-split:v1:" + key.encode()).digest()
        assert case_half(key) == digest[-1] & 1
    assert case_half(7) == case_half("7")
    selection, confirmation = split_keys(keys(1000))
    assert all(case_half(k) == SELECTION for k in selection)
    assert all(case_half(k) == CONFIRMATION for k in confirmation)
    assert 450 < len(selection) < 550  # about half
    # A case's half does not depend on the other cases.
    assert split_keys(keys(1000)[:10])[0] == [k for k in selection if k in keys(1000)[:10]]


def test_arms_are_picked_on_one_half_and_reported_on_the_other():
    few, cot = scores(0.85, 1), scores(0.86, 2)
    arms = [arm("base · zero-shot", "zero-shot", scores(0.5, 0)), arm("base · few-shot", "few-shot", few),
            arm("base · cot", "cot", cot, prompt_tokens=300)]  # fmt: skip
    d = V.decide(arms, PROFILE)
    sel = d.selection
    assert sel["rule"] == "split" and sel["correction"] is None and not sel["flipped"]
    assert sel["selection_cases"] + sel["confirmation_cases"] == sel["paired_cases"] == N
    selection, confirmation = split_keys(keys())
    assert (sel["selection_cases"], sel["confirmation_cases"]) == (len(selection), len(confirmation))
    assert d.verdict == V.PROMPTING_ENOUGH
    picked = next(a for a in arms if a.label == d.arm)
    # The summary reports the picked arm on the confirmation half only.
    conf_mean = np.mean([picked.scores[k] for k in confirmation])
    assert f"{conf_mean:.3f}" in d.summary
    assert f"Scores are on the {len(confirmation)} confirmation cases" in d.summary
    assert any(e.startswith("Selection and confirmation: the arms were picked on") for e in d.evidence)
    assert V.decide(arms, PROFILE).to_dict() == d.to_dict()  # deterministic


def test_one_arm_a_side_picks_nothing_and_uses_every_case():
    arms = [
        arm("base · few-shot", "few-shot", scores(0.5, 1)),
        tuned("tuned · plain", "plain", scores(0.9, 2)),
    ]
    d = V.decide(arms, PROFILE)
    assert d.selection["rule"] == "same-cases" and d.selection["correction"] is None
    assert d.selection["selection_cases"] == d.selection["confirmation_cases"] == N
    assert d.verdict == V.FINE_TUNE
    assert "0.900" in d.summary  # the arm's own mean on all 200 cases
    assert any(f"on {N} paired cases" in e for e in d.evidence)


def test_too_few_cases_to_split_fall_back_to_a_bonferroni_correction():
    n = 30  # halves of about 15 < MIN_HALF_CASES
    assert min(map(len, split_keys(keys(n)))) < MIN_HALF_CASES
    arms = [
        arm("base · zero-shot", "zero-shot", scores(0.30, 1, n)),
        arm("base · few-shot", "few-shot", scores(0.40, 2, n)),
        arm("base · cot", "cot", scores(0.40, 3, n)),
        tuned("tuned · plain", "plain", scores(0.70, 4, n), training_cost=50),
        tuned("tuned · few-shot", "few-shot", scores(0.60, 5, n), training_cost=50),
    ]
    d = V.decide(arms, PROFILE)
    sel = d.selection
    assert sel["rule"] == "same-cases" and sel["correction"] == "bonferroni"
    assert sel["comparisons"] == 3 * 2 and sel["selection_cases"] == sel["confirmation_cases"] == n
    assert any("Bonferroni" in e and "p-values x 6" in e for e in d.evidence)
    assert any(
        c.startswith(f"Only {n} paired cases: too few to pick the arms on one half") for c in d.caveats
    )
    # The comparison's p-value is the raw Wilcoxon p x 6.
    line = next(e for e in d.evidence if e.startswith("tuned · plain against base · "))
    assert "Bonferroni-adjusted" in line
    best_p = next(a for a in arms if a.label == line.split(" against ")[1].split(":")[0])
    raw = V.compare(best_p, arms[3]).p_value
    assert f"p={bonferroni(raw, 6):.4f}" in line


def test_the_fallback_interval_is_wider_for_an_arm_picked_among_several():
    n = 30
    arms = [arm(f"base · {k}", k, scores(0.83, i, n)) for i, k in enumerate(["zero-shot", "few-shot", "cot"])]
    d = V.decide(arms, PROFILE)
    assert d.selection["correction"] == "bonferroni"
    assert d.verdict == V.PROMPTING_ENOUGH
    # 1 - 0.05 / 3: a 98.33% interval, which reaches below the target.
    assert any(c.startswith(f"{d.arm}'s 98.33% interval reaches below the target") for c in d.caveats)


def test_a_verdict_that_flips_between_the_halves_is_inconclusive_with_the_cases_needed():
    selection, confirmation = split_keys(keys())
    # few-shot passes every selection case and 60% of the confirmation ones: prompting is enough
    # on the half that picks it, not on the half that confirms it.
    lucky = dict.fromkeys(selection, 1.0) | {k: float(i % 5 < 3) for i, k in enumerate(confirmation)}
    arms = [arm("base · zero-shot", "zero-shot", scores(0.5, 1)), arm("base · few-shot", "few-shot", lucky)]
    assert arms[1].mean >= PROFILE.quality_target  # on all cases it meets the target
    d = V.decide(arms, PROFILE)
    assert d.verdict == V.INCONCLUSIVE and d.arm == "base · few-shot"
    assert d.selection["flipped"] and d.selection["rule"] == "split"
    assert "The two halves of the cases point different ways" in d.summary
    assert d.cases_needed and f"about {d.cases_needed} cases would settle it" in d.summary
    assert any("selection cases" in e and "confirmation cases" in e for e in d.evidence)


def test_the_best_prompting_arm_reaching_the_target_only_on_the_confirmation_half_is_a_flip():
    selection, confirmation = split_keys(keys())
    late = {k: float(i % 2) for i, k in enumerate(selection)} | dict.fromkeys(confirmation, 1.0)
    arms = [
        arm("base · zero-shot", "zero-shot", scores(0.3, 1)),
        arm("base · few-shot", "few-shot", late),
        tuned("tuned · plain", "plain", scores(0.95, 2), training_cost=50),
    ]
    d = V.decide(arms, PROFILE)
    assert d.verdict == V.INCONCLUSIVE and d.selection["flipped"]
    assert "no prompting arm meets the target; on the confirmation cases base · few-shot does" in d.summary


def halves(on_selection: float, on_confirmation: float) -> dict[str, float]:
    """Pass/fail per case: the given share of each half passes (the first cases of each)."""
    selection, confirmation = split_keys(keys())
    return {
        **{k: float(i < on_selection * len(selection)) for i, k in enumerate(selection)},
        **{k: float(i < on_confirmation * len(confirmation)) for i, k in enumerate(confirmation)},
    }


def test_a_fine_tune_meeting_the_target_only_on_the_selection_half_is_a_flip():
    # The fine-tune is picked because it meets the target on the selection half (0.85 against 0.8),
    # where no prompting arm does; on the confirmation half it scores 0.55, no better than prompting.
    arms = [
        arm("base · zero-shot", "zero-shot", halves(0.50, 0.50)),
        arm("base · few-shot", "few-shot", halves(0.52, 0.52)),
        tuned("tuned-a · plain", "plain", halves(0.85, 0.55), training_cost=50),
        tuned("tuned-b · plain", "plain", halves(0.60, 0.60), training_cost=50),
    ]
    for examples in (100, 1000):  # collect more data / cannot be told apart, without the check
        d = V.decide(arms, V.Profile(quality_target=0.8, monthly_volume=1000, examples_available=examples))
        assert d.verdict == V.INCONCLUSIVE and d.arm == "tuned-a · plain"
        assert d.selection["flipped"] and d.selection["rule"] == "split"
        assert (
            "on the selection cases tuned-a · plain meets the target where no prompting arm does" in d.summary
        )
        assert "on the confirmation cases it misses the target and is not significantly better" in d.summary
        assert d.cases_needed and f"about {d.cases_needed} cases would settle it" in d.summary
        assert any(
            e.startswith("tuned-a · plain scores 0.85") and "confirmation cases" in e for e in d.evidence
        )
        assert "Scores are on the" not in d.summary


def test_a_fine_tune_short_of_the_target_on_the_confirmation_half_but_still_better_is_no_flip():
    # Both halves point to fine-tuning: it meets the target on the selection half, and on the
    # confirmation half it falls short of it but is still significantly better than prompting.
    arms = [
        arm("base · zero-shot", "zero-shot", halves(0.40, 0.40)),
        arm("base · few-shot", "few-shot", halves(0.50, 0.50)),
        tuned("tuned-a · plain", "plain", halves(0.90, 0.75), training_cost=50),
        tuned("tuned-b · plain", "plain", halves(0.60, 0.60), training_cost=50),
    ]
    d = V.decide(arms, PROFILE)
    assert d.verdict == V.FINE_TUNE and d.arm == "tuned-a · plain" and not d.selection["flipped"]
    assert any(c.startswith("The fine-tuned model is still below the target") for c in d.caveats)


def test_a_fine_tune_reaching_the_target_only_on_the_confirmation_half_is_judged_there():
    # Short of the target on the selection half (picked as the best fine-tune), meeting it on the
    # held-out half and significantly better than prompting there: confirmed, not a flip.
    arms = [
        arm("base · zero-shot", "zero-shot", halves(0.40, 0.40)),
        arm("base · few-shot", "few-shot", halves(0.50, 0.50)),
        tuned("tuned-a · plain", "plain", halves(0.78, 0.92), training_cost=50),
        tuned("tuned-b · plain", "plain", halves(0.60, 0.60), training_cost=50),
    ]
    d = V.decide(arms, PROFILE)
    assert d.verdict == V.FINE_TUNE and d.arm == "tuned-a · plain" and not d.selection["flipped"]


def test_the_fallback_picks_and_judges_on_the_cases_every_arm_scored():
    # 30 cases every arm scored (too few to split) and 6 more that only few-shot scored, all passed:
    # on its 36 cases few-shot meets the target (0.806), on the 30 paired ones it does not (0.767).
    paired = {k: float(i < 23) for i, k in enumerate(keys(30))}
    extra = {f"extra-{i}": 1.0 for i in range(6)}
    arms = [
        arm("base · zero-shot", "zero-shot", {k: float(i < 10) for i, k in enumerate(keys(30))}),
        arm("base · few-shot", "few-shot", paired | extra),
    ]
    assert arms[1].mean >= PROFILE.quality_target
    sel = V.plan_selection(arms)
    assert sel.rule == "same-cases" and sel.correction == "bonferroni"
    for key in ("base · zero-shot", "base · few-shot"):
        assert set(sel.picked[key].scores) == set(sel.judged[key].scores) == set(keys(30))
        assert sel.picked[key].mean == sel.judged[key].mean
    # Picked on the uncorrected 95% interval, judged on the Bonferroni one (1 - 0.05 / 2).
    assert sel.judged["base · few-shot"].ci[0] < sel.picked["base · few-shot"].ci[0]
    d = V.decide(arms, PROFILE)
    # Not a flip (the run was not split): few-shot is below the target on the cases it is judged on.
    assert not d.selection["flipped"] and "two halves" not in d.summary
    assert d.verdict != V.PROMPTING_ENOUGH and d.arm == "base · few-shot"
    assert any(e.startswith("the best prompting arm, base · few-shot, scores 0.767") for e in d.evidence)


# --- the retrieval rung without knowledge documents ----------------------------------------------

RUNGS_0_TO_5 = [("zero-shot", 0.05), ("few-shot", 0.15), ("few-shot-nearest", 0.27),
                ("few-shot-optimized", 0.40), ("system", 0.55), ("cot", 0.70)]  # fmt: skip


def test_without_knowledge_documents_retrieval_is_not_a_step_left_to_try():
    arms = [arm(f"base · {k}", k, scores(rate, i)) for i, (k, rate) in enumerate(RUNGS_0_TO_5)]
    profile = V.Profile(quality_target=0.95, monthly_volume=1000, examples_available=1000)
    # With knowledge documents, retrieval can be run: the ladder is still gaining, try it first.
    d = V.decide(arms, profile)
    assert d.verdict == V.INCONCLUSIVE and "try retrieval (RAG) before deciding" in d.summary
    assert any(
        c.startswith("Retrieval (RAG) was not measured: this verdict is drawn without it") for c in d.caveats
    )
    # Without them a rag run is refused: every step the suite allows has been tried.
    d = V.decide(arms, replace(profile, knowledge=False))
    assert d.verdict == V.FINE_TUNE
    assert "every prompting step has been tried (retrieval aside: the suite has no knowledge documents)" in (
        d.summary
    )
    assert [c for c in d.caveats if "not measured" in c] == [
        "Retrieval (RAG) was not measured, so this verdict is drawn without it: the suite has no knowledge "
        "documents; add them (import_knowledge, the suite page) to try it."
    ]
    assert d.profile["knowledge"] is False


def test_without_knowledge_documents_the_rung_caveat_says_how_to_add_them():
    arms = [
        arm("base · zero-shot", "zero-shot", scores(0.3, 1)),
        arm("base · few-shot", "few-shot", scores(0.4, 2)),
    ]
    no_docs = replace(PROFILE, knowledge=False)
    assert V._untried_steps(arms, knowledge=False) == [
        "few-shot (nearest)", "few-shot (optimised)", "system prompt / structured output", "chain-of-thought"
    ]  # fmt: skip
    assert V._untried_steps(arms)[-1] == "retrieval (RAG)"
    line = V.unmeasured_line(arms, knowledge=False)
    assert line.startswith("Retrieval (RAG), chain-of-thought, system prompt / structured output")
    assert line.endswith(
        "For retrieval (RAG), the suite has no knowledge documents; add them (import_knowledge, the suite "
        "page) to try it."
    )
    # A retrieval arm that was measured is measured, documents or not.
    with_rag = [*arms, arm("base · rag", "rag", scores(0.45, 3))]
    assert "knowledge documents" not in V.unmeasured_line(with_rag, knowledge=False)
    # Only where the rung caveat applies: prompting that is enough needs neither.
    enough = [
        arm("base · zero-shot", "zero-shot", scores(0.6, 1)),
        arm("base · few-shot", "few-shot", scores(0.95, 2)),
    ]
    d = V.decide(enough, no_docs)
    assert d.verdict == V.PROMPTING_ENOUGH
    assert not any("not measured" in c or "knowledge documents" in c for c in d.caveats)


def test_an_optimised_few_shot_search_is_a_one_time_cost_of_its_arm():
    profile = V.Profile(quality_target=0.8, monthly_volume=1000, horizon_months=12)
    plain = arm("m · few-shot-optimized", "few-shot-optimized", scores(0.9, 1))
    searched = replace(plain, setup_cost=2.5)
    assert V.horizon_cost(searched, profile) == V.horizon_cost(plain, profile) + 2.5
    (row,) = V.cost_table([searched], profile)
    assert row["setup_cost"] == 2.5 and row["training_cost"] is None
    assert V.cost_table([plain], profile)[0]["setup_cost"] is None


def test_a_distilled_student_breaks_even_against_its_teacher_with_the_labelling_in_its_training_cost():
    profile = V.Profile(quality_target=0.8, monthly_volume=10_000, horizon_months=12)
    # The small base model prompted (cheap, short of the target) and the big teacher (dear, meets it).
    small = arm("small · few-shot", "few-shot", scores(0.5, 1), prompt_tokens=300)
    teacher = arm("big · cot", "cot", scores(0.92, 2), prompt_tokens=900)
    teacher = replace(teacher, prices=V.Prices(price_in=10, price_out=30))
    student = replace(
        tuned("small-ft1 · plain", "plain", scores(0.9, 3), training_cost=1.0),
        data_cost=4.0,
        distilled_from=teacher.key,
    )
    d = V.decide([small, teacher, student], profile)
    be = d.break_even
    assert be["prompting_arm"] == "big · cot" and be["fine_tuned_arm"] == "small-ft1 · plain"
    assert be["distilled"] is True and be["data_cost"] == 4.0
    assert be["training_cost"] == pytest.approx(5.0)  # training 1.0 + labelling 4.0
    assert be["prompting_cost_per_request"] == pytest.approx(V.cost_per_request(teacher))
    assert any("was distilled from big · cot" in line for line in d.evidence)
    (row,) = [r for r in d.costs if r["arm"] == "small-ft1 · plain"]
    assert row["training_cost"] == pytest.approx(5.0) and row["data_cost"] == 4.0
    # The same student without its teacher's key is compared with the prompting the verdict picks.
    plain_student = replace(student, distilled_from=None)
    assert V.decide([small, teacher, plain_student], profile).break_even["distilled"] is False
