"""The decision on runs with known arm results: one test per recommendation, and the edge cases.

Suites here have 100 test cases, a quality target of 0.8, 100,000 requests a month and a 12-month
horizon unless a test says otherwise. Scores are 1/0 per case, so an arm's mean is its pass count.
"""

from __future__ import annotations

import json

import pytest

from evaluations.analysis import verdict as D
from evaluations.models import KnowledgeChunk, KnowledgeDoc
from evaluations.selectors.decisions import DecisionError, suite_decision
from tests.factories import EndpointFactory, SuiteVersionFactory
from tests.runs import ArmSpec, endpoints, finished_run, scores_with_mean, suite_version

N = 100


def _suite(train_cases: int = 600, **fields):
    fields = {"quality_target": 0.8, "monthly_volume": 100_000, "horizon_months": 12, **fields}
    return suite_version(test_cases=N, train_cases=train_cases, **fields)


def _arm(endpoint, strategy, right, prompt_tokens=100, **kw):
    return ArmSpec(endpoint, strategy, scores_with_mean(N, right), prompt_tokens=prompt_tokens, **kw)


def _decide(version, **kw):
    return suite_decision(version.suite, **kw)


def _with_knowledge(version):
    """A knowledge document (one passage) in the version: a rag arm can be run on it."""
    doc = KnowledgeDoc.objects.create(version=version, doc_id="faq", text="Refunds take 30 days.", position=0)
    KnowledgeChunk.objects.create(version=version, doc=doc, position=0, text=doc.text)
    return version


@pytest.fixture
def plateau_ladder():
    """Prompting climbs from zero-shot to few-shot and then stops: 40 -> 55 -> 56 -> 57."""

    def make(base):
        return [
            _arm(base, "zero-shot", 40, 80),
            _arm(base, "few-shot", 55, 600),
            _arm(base, "system", 56, 120),
            _arm(base, "cot", 57, 150),
        ]

    return make


def test_prompting_is_enough_when_the_cheapest_arm_meeting_the_target_beats_fine_tuning_on_cost(db):
    version = _suite()
    base, tuned = endpoints(training_cost=100_000)
    finished_run(
        version,
        [
            _arm(base, "zero-shot", 60, 80),
            _arm(base, "few-shot", 90, 400),
            _arm(base, "cot", 91, 500),
            _arm(tuned, "plain", 92, 40),
        ],
    )
    result = _decide(version)
    d = result.decision
    assert d.verdict == D.PROMPTING_ENOUGH
    assert d.arm == "base-model · few-shot"
    # Three prompting arms to pick from: picked on one half of the cases, reported on the other
    # (few-shot passes 43 of those 50, 0.860; 0.900 on all 100 cases, as the ladder shows).
    assert d.selection["rule"] == "split" and d.selection["confirmation_cases"] == 50
    assert "0.860" in d.summary and "0.8" in d.summary and "50 confirmation cases" in d.summary
    assert next(r for r in d.ladder if r["arm"] == d.arm)["mean"] == pytest.approx(0.9)
    # The fine-tuned arm meets the target too, and the evidence says why it is not chosen.
    assert any("tuned-model · plain also meets the target but costs" in e for e in d.evidence)
    assert d.break_even["available"] and not d.break_even["pays_back_within_horizon"]
    json.dumps(result.to_dict())  # the API and the command serialise it as is


def test_fine_tune_for_cost_when_both_meet_the_target_and_fine_tuning_is_cheaper_within_the_horizon(db):
    version = _suite()
    base, tuned = endpoints(training_cost=50)
    finished_run(
        version,
        [_arm(base, "zero-shot", 60, 80), _arm(base, "few-shot", 90, 600), _arm(tuned, "plain", 91, 40)],
    )
    d = _decide(version).decision
    assert d.verdict == D.FINE_TUNE_FOR_COST
    assert d.arm == "tuned-model · plain"
    be = d.break_even
    # few-shot: 600 x $1 + 5 x $2 per 1M = $0.00061; plain: 40 x $1 + 5 x $2 per 1M = $0.00005.
    assert be["saving_per_request"] == pytest.approx(0.00056)
    assert be["monthly_saving"] == pytest.approx(56.0)
    assert be["break_even_requests"] == pytest.approx(50 / 0.00056)
    assert be["prompt_tokens_saved"] == pytest.approx(560)
    assert be["pays_back_within_horizon"]
    assert d.curves["crossing_month"] == pytest.approx(50 / 56)
    assert any("paid back after" in e for e in d.evidence)


def test_fine_tune_when_prompting_plateaued_below_the_target_and_the_fine_tuned_arm_meets_it(
    db, plateau_ladder
):
    version = _suite()
    base, tuned = endpoints()
    finished_run(version, [*plateau_ladder(base), _arm(tuned, "plain", 92, 40)])
    d = _decide(version).decision
    assert d.verdict == D.FINE_TUNE
    assert d.arm == "tuned-model · plain"
    assert any("plateaued" in e for e in d.evidence)
    # The best prompting arm is picked on the selection half, where system and cot tie (29 of 50) and
    # system needs fewer prompt tokens: the fine-tune is compared with it on the other half.
    assert any(
        "tuned-model · plain against base-model · system" in e
        and "on 50 paired cases" in e
        and "(better)" in e
        for e in d.evidence
    )
    # The ladder: each step against the best of the step below, with its significance and token cost.
    steps = {row["arm"]: row for row in d.ladder}
    assert steps["base-model · few-shot"]["significant"]
    assert steps["base-model · few-shot"]["extra_prompt_tokens"] == pytest.approx(520)
    assert steps["base-model · cot"]["previous"] == "base-model · system"
    assert not steps["base-model · cot"]["significant"]
    assert steps["tuned-model · plain"]["previous"] == "base-model · cot"
    assert steps["tuned-model · plain"]["significant"]
    assert d.ladder[0]["step"] == "Zero-shot"


def test_hybrid_when_only_the_fine_tuned_model_with_a_prompt_reaches_the_target(db, plateau_ladder):
    version = _suite()
    base, tuned = endpoints()
    finished_run(
        version, [*plateau_ladder(base), _arm(tuned, "plain", 70, 40), _arm(tuned, "few-shot", 90, 500)]
    )
    d = _decide(version).decision
    assert d.verdict == D.HYBRID_VERDICT
    assert d.arm == "tuned-model · few-shot"
    assert any("does not reach the target" in e and "with a prompt it does" in e for e in d.evidence)
    assert d.ladder[-1]["step"] == "Hybrid (fine-tuned + prompt)"


def test_collect_more_data_when_few_shot_has_not_been_tried(db):
    version = _suite()
    base, _ = endpoints()
    finished_run(version, [_arm(base, "zero-shot", 40)])
    d = _decide(version).decision
    assert d.verdict == D.COLLECT_MORE_DATA
    assert "few-shot prompting has not been tried" in d.summary
    assert not d.break_even["available"] and "No fine-tuned arm" in d.break_even["reason"]


def test_collect_more_data_when_there_are_too_few_examples_to_fine_tune(db, plateau_ladder):
    version = _suite(train_cases=120)
    base, _ = endpoints()
    finished_run(version, plateau_ladder(base))
    d = _decide(version).decision
    assert d.verdict == D.COLLECT_MORE_DATA
    assert "120 labelled examples" in d.summary and "500" in d.summary


def test_inconclusive_when_the_intervals_overlap_with_the_cases_needed(db):
    version = _suite()
    base, tuned = endpoints()
    finished_run(version, [_arm(base, "zero-shot", 72), _arm(base, "few-shot", 76), _arm(tuned, "plain", 81)])
    d = _decide(version).decision
    assert d.verdict == D.INCONCLUSIVE
    assert d.cases_needed and d.cases_needed > N
    assert f"about {d.cases_needed} cases" in d.summary


def test_without_a_fine_tuned_arm_a_plateau_with_enough_data_says_fine_tune_but_not_measured(
    db, plateau_ladder
):
    version = _suite()
    base, _ = endpoints()
    finished_run(version, plateau_ladder(base))
    d = _decide(version).decision
    assert d.verdict == D.FINE_TUNE
    assert d.arm is None
    assert any("No fine-tuned model has been measured yet" in c for c in d.caveats)
    assert any("no fine-tuned arm was measured" in e for e in d.evidence)
    assert not d.break_even["available"] and d.curves is None


def test_a_fine_tuned_arm_that_costs_more_per_request_never_pays_back(db):
    version = _suite()
    base, tuned = endpoints(tuned_price=(20.0, 40.0), training_cost=10)
    finished_run(version, [_arm(base, "zero-shot", 85, 100), _arm(tuned, "plain", 90, 40)])
    d = _decide(version).decision
    assert d.verdict == D.PROMPTING_ENOUGH
    be = d.break_even
    assert be["saving_per_request"] < 0
    assert be["break_even_requests"] is None and be["break_even_days"] is None
    assert any("never paid back" in e for e in d.evidence)
    assert d.curves["crossing_month"] is None


def test_zero_volume_answers_without_dividing_by_zero(db):
    version = _suite(monthly_volume=0)
    base, tuned = endpoints(training_cost=50)
    finished_run(version, [_arm(base, "few-shot", 90, 600), _arm(tuned, "plain", 91, 40)])
    d = _decide(version).decision
    # With no requests the training cost is never recovered: prompting stays the cheaper option.
    assert d.verdict == D.PROMPTING_ENOUGH
    assert d.break_even["break_even_days"] is None
    assert "no production volume" in d.break_even["reason"]
    assert all(row["monthly_cost"] == 0 for row in d.costs)


def test_missing_prices_make_costs_unknown_instead_of_zero(db):
    version = _suite()
    base = EndpointFactory(name="unpriced", price_in=0, price_out=0)
    tuned = EndpointFactory(
        name="tuned-unpriced", kind="fine_tuned", base_endpoint=base, price_in=0, price_out=0
    )
    finished_run(version, [_arm(base, "few-shot", 90, 600), _arm(tuned, "plain", 91, 40)])
    d = _decide(version).decision
    assert d.verdict == D.PROMPTING_ENOUGH
    assert all(row["cost_per_request"] is None and row["monthly_cost"] is None for row in d.costs)
    assert not d.break_even["available"]
    assert "prices" in d.break_even["reason"]
    assert any("No cost is known" in c for c in d.caveats)
    assert any("cost over the horizon is unknown" in e for e in d.evidence)
    assert d.frontier == []


def test_an_unknown_training_cost_is_estimated_from_the_train_split(db):
    version = _suite(train_cases=600, training_price_per_1m=8, training_epochs=2)
    base, tuned = endpoints(training_cost=None)
    finished_run(version, [_arm(base, "few-shot", 90, 600), _arm(tuned, "plain", 91, 40)])
    result = _decide(version)
    d = result.decision
    row = next(r for r in d.costs if r["arm"] == "tuned-model · plain")
    assert row["training_cost_source"] == "estimated"
    # Tokens per example come from the train split's characters x tokens per character measured
    # on this run's prompts (4 characters a token in tests/runs.py).
    assert result.tokens_per_char_measured and result.tokens_per_char == pytest.approx(0.25)
    per_example = d.profile["train_tokens_per_example"]
    assert row["training_cost"] == pytest.approx(per_example * 600 * 2 * 8 / 1e6)
    assert any("training cost is an estimate" in c for c in d.caveats)


def test_no_finished_run_is_no_evidence_not_an_error(db):
    version = _suite()
    d = _decide(version).decision
    assert d.verdict == D.NO_EVIDENCE
    assert d.ladder == [] and d.break_even is None
    assert d.checklist  # the hand-made checklist is still there to fill in


def test_a_chosen_run_must_be_a_finished_run_of_the_suite(db):
    version, other = _suite(), _suite()
    base, _ = endpoints()
    run = finished_run(other, [_arm(base, "zero-shot", 40)])
    with pytest.raises(DecisionError, match=f"run #{run.pk}"):
        _decide(version, run_id=run.pk)


def test_the_checklist_sits_next_to_the_measured_answer(db):
    version = _suite(urgency="now", retrains_per_year=12, monthly_budget=1000)
    base, tuned = endpoints(training_cost=100_000)
    finished_run(version, [_arm(base, "few-shot", 90, 400), _arm(tuned, "plain", 92, 40)])
    d = _decide(version).decision
    items = {i["question"]: i for i in d.checklist}
    assert items["How urgent is it?"]["points_to"] == "prompting"
    assert items["How many labelled examples are there?"]["points_to"] == "fine-tuning"
    assert items["How often does the task change?"]["points_to"] == "prompting"
    assert items["What is the monthly budget?"]["points_to"] == "prompting"
    assert items["By hand, the checklist points to"]["answer"] == "prompting"
    assert items["By hand, the checklist points to"]["why"] == "the measured answer agrees"


def test_an_hourly_price_on_a_hosted_endpoint_is_an_unknown_cost_not_a_free_one(db):
    version = _suite()
    base = EndpointFactory(name="hourly", price_in=0, price_out=0, price_hour=4)
    tuned = EndpointFactory(name="tuned-hourly", kind="fine_tuned", base_endpoint=base, training_cost=5)
    finished_run(version, [_arm(base, "few-shot", 85, 600), _arm(tuned, "plain", 90, 40)])
    d = _decide(version).decision
    row = next(r for r in d.costs if r["arm"] == "hourly · few-shot")
    assert row["cost_per_request"] is None and row["horizon_cost"] is None
    assert "$0.00 a request" not in " ".join(d.evidence)
    assert any("No cost is known for hourly · few-shot" in c for c in d.caveats)


def test_a_hosting_only_endpoint_costs_its_hosting_and_nothing_per_request(db):
    version = _suite()
    base, _ = endpoints()
    flat = EndpointFactory(
        name="self-hosted", kind="fine_tuned", base_endpoint=base, price_in=0, price_out=0,
        hosting_monthly=300, training_cost=10,
    )  # fmt: skip
    finished_run(version, [_arm(base, "few-shot", 90, 600), _arm(flat, "plain", 91, 40)])
    d = _decide(version).decision
    row = next(r for r in d.costs if r["arm"] == "self-hosted · plain")
    assert row["cost_per_request"] == 0 and row["monthly_cost"] == 300
    assert row["horizon_cost"] == pytest.approx(300 * 12 + 10)
    # Few-shot costs $61 a month: the $300 hosting never pays back, so prompting stays.
    assert d.verdict == D.PROMPTING_ENOUGH
    assert "hosting eats the saving" in d.break_even["reason"]


def test_an_arm_whose_calls_mostly_failed_is_left_out_not_read_as_a_bad_fine_tune(db, plateau_ladder):
    version = _suite()
    base, tuned = endpoints()
    finished_run(version, [*plateau_ladder(base), _arm(tuned, "plain", 0, 40, errors=set(range(80)))])
    d = _decide(version).decision
    assert d.verdict == D.FINE_TUNE and d.arm is None  # as if no fine-tune had been measured
    assert any("tuned-model · plain is left out: 80 of its 100 calls failed" in c for c in d.caveats)
    assert all(row["arm"] != "tuned-model · plain" for row in d.ladder)


def test_a_few_failed_calls_are_named_in_the_caveats(db):
    version = _suite()
    base, _ = endpoints()
    finished_run(version, [_arm(base, "few-shot", 90, 600, errors={0, 1, 2})])
    d = _decide(version).decision
    assert any("base-model · few-shot: 3 of 100 calls failed" in c for c in d.caveats)


def test_only_fine_tuned_arms_cannot_answer_the_question(db):
    version = _suite()
    _, tuned = endpoints()
    finished_run(version, [_arm(tuned, "plain", 95, 40), _arm(tuned, "few-shot", 96, 400)])
    d = _decide(version).decision
    assert d.verdict == D.INCONCLUSIVE
    assert "No prompting arm was measured" in d.summary
    assert not d.break_even["available"] and "No prompting arm" in d.break_even["reason"]


def test_a_plain_fine_tune_that_meets_the_target_is_named_over_a_hybrid(db, plateau_ladder):
    version = _suite()
    base = EndpointFactory(name="base-model", price_in=0, price_out=0)  # no prices: no cost ordering
    tuned = EndpointFactory(
        name="tuned-model", kind="fine_tuned", base_endpoint=base, price_in=0, price_out=0
    )
    finished_run(
        version, [*plateau_ladder(base), _arm(tuned, "plain", 93, 40), _arm(tuned, "few-shot", 97, 500)]
    )
    d = _decide(version).decision
    assert d.verdict == D.FINE_TUNE and d.arm == "tuned-model · plain"
    assert not any("does not reach the target" in e for e in d.evidence)


def test_one_measured_prompting_step_is_no_trend(db):
    version = _suite()
    base, _ = endpoints()
    finished_run(version, [_arm(base, "few-shot", 40)])
    d = _decide(version).decision
    assert d.verdict == D.INCONCLUSIVE
    assert "only one prompting step was measured" in d.summary and "zero-shot" in d.summary


def test_a_ladder_that_gains_at_every_step_but_stays_below_says_every_step_was_tried(db):
    # Every rung of the prompting-or-retrieval ladder, each a significant gain on the one below.
    version = _suite(quality_target=0.95)
    base, _ = endpoints()
    rungs = ["zero-shot", "few-shot", "few-shot-nearest", "few-shot-optimized", "system", "cot", "rag"]
    finished_run(
        version,
        [_arm(base, kind, right) for kind, right in zip(rungs, [5, 15, 27, 40, 55, 70, 85], strict=True)],
    )
    d = _decide(version).decision
    assert d.verdict == D.FINE_TUNE
    assert "every prompting step has been tried" in d.summary and "stopped improving" not in d.summary
    assert [row["step"] for row in d.ladder] == [label for _, label in D.LEVELS[:7]]
    assert not any("not measured" in c for c in d.caveats)


def test_a_ladder_still_gaining_without_the_stronger_rungs_says_try_them_first(db):
    # zero-shot -> few-shot -> system -> cot once counted as "every step"; nearest and optimised
    # few-shot and retrieval are rungs of the ladder now, so a ladder still gaining says to try them.
    # The suite has knowledge documents, so retrieval is one of them.
    version = _with_knowledge(_suite(quality_target=0.95))
    base, _ = endpoints()
    ladder = [_arm(base, "zero-shot", 20), _arm(base, "few-shot", 45), _arm(base, "system", 65),
              _arm(base, "cot", 85)]  # fmt: skip
    finished_run(version, ladder)
    d = _decide(version).decision
    assert d.profile["knowledge"] is True
    assert d.verdict == D.INCONCLUSIVE
    assert "still improving" in d.summary
    assert "try few-shot (nearest), few-shot (optimised), retrieval (RAG) before deciding" in d.summary
    assert any(
        c.startswith("Retrieval (RAG), few-shot (optimised) and few-shot (nearest) were not measured")
        and "knowledge documents" not in c
        for c in d.caveats
    )
    # Without knowledge documents a rag run is refused: retrieval is not a step to try, and the
    # caveat says what it would take.
    version = _suite(quality_target=0.95)
    finished_run(version, ladder)
    d = _decide(version).decision
    assert d.profile["knowledge"] is False
    assert d.verdict == D.INCONCLUSIVE
    assert "try few-shot (nearest), few-shot (optimised) before deciding" in d.summary
    [caveat] = [c for c in d.caveats if "were not measured" in c]
    assert caveat.startswith("Retrieval (RAG), few-shot (optimised) and few-shot (nearest) were not measured")
    assert caveat.endswith(
        "For retrieval (RAG), the suite has no knowledge documents; add them (import_knowledge, the "
        "suite page) to try it."
    )


def test_without_knowledge_documents_every_step_is_tried_with_rungs_zero_to_five(db):
    # Every rung but retrieval, each a significant gain on the one below, still below the target.
    rungs = ["zero-shot", "few-shot", "few-shot-nearest", "few-shot-optimized", "system", "cot"]
    version = _suite(quality_target=0.95)
    base, _ = endpoints()
    ladder = [_arm(base, kind, right) for kind, right in zip(rungs, [5, 15, 27, 40, 55, 70], strict=True)]
    finished_run(version, ladder)
    d = _decide(version).decision
    assert d.verdict == D.FINE_TUNE
    assert "every prompting step has been tried (retrieval aside: the suite has no knowledge documents)" in (
        d.summary
    )
    assert (
        "Retrieval (RAG) was not measured, so this verdict is drawn without it: the suite has no "
        "knowledge documents; add them (import_knowledge, the suite page) to try it."
    ) in d.caveats
    # The same ladder on a suite with knowledge documents: retrieval is the step left to try.
    version = _with_knowledge(_suite(quality_target=0.95))
    finished_run(version, ladder)
    d = _decide(version).decision
    assert d.verdict == D.INCONCLUSIVE
    assert "still improving" in d.summary and "try retrieval (RAG) before deciding" in d.summary
    assert any(
        c.startswith("Retrieval (RAG) was not measured: this verdict is drawn without it") for c in d.caveats
    )


def test_knowledge_is_read_from_the_run_s_suite_version_else_the_latest(db):
    version = _suite()
    base, _ = endpoints()
    run = finished_run(version, [_arm(base, "zero-shot", 40), _arm(base, "few-shot", 55)])
    newer = _with_knowledge(SuiteVersionFactory(suite=version.suite, number=version.number + 1))
    assert version.suite.latest_version() == newer
    # The run retrieved (or could not) from its own version's documents, not from a later one's.
    assert _decide(version, run_id=run.pk).decision.profile["knowledge"] is False
    # Without a finished run the suite's latest version tells.
    fresh = _with_knowledge(_suite())
    assert _decide(fresh).run is None and _decide(fresh).decision.profile["knowledge"] is True


# --- retrieval, the rungs not measured, selection and confirmation -----------------------------


def test_a_rag_arm_meeting_the_target_is_prompting_enough_when_the_fine_tune_is_no_better(db):
    version = _suite()
    base, tuned = endpoints(training_cost=100_000)
    finished_run(
        version,
        [
            _arm(base, "zero-shot", 55, 80),
            _arm(base, "few-shot-nearest", 70, 600),
            _arm(base, "rag", 92, 900),
            _arm(tuned, "plain", 92, 40),
        ],
    )
    d = _decide(version).decision
    assert d.verdict == D.PROMPTING_ENOUGH and d.arm == "base-model · rag"
    assert d.title == "Prompting is enough (retrieval)"
    assert "Prompting is enough (retrieval): base-model · rag, a retrieval arm" in d.summary
    assert any("tuned-model · plain also meets the target but costs" in e for e in d.evidence)


def test_only_the_fine_tune_reaching_the_target_is_fine_tune_even_against_retrieval(db):
    version = _suite()
    base, tuned = endpoints()
    finished_run(
        version,
        [_arm(base, "few-shot", 50, 600), _arm(base, "rag", 62, 900), _arm(tuned, "plain", 95, 40)],
    )
    d = _decide(version).decision
    assert d.verdict == D.FINE_TUNE and d.arm == "tuned-model · plain"
    assert "where prompting and retrieval do not (best base-model · rag" in d.summary
    assert any("tuned-model · plain against base-model · rag" in e and "(better)" in e for e in d.evidence)


def test_a_fine_tuned_endpoint_with_a_rag_strategy_is_fine_tuned_plus_rag(db):
    version = _suite()
    base, tuned = endpoints()
    finished_run(
        version,
        [
            _arm(base, "few-shot", 50, 600),
            _arm(base, "rag", 60, 900),
            _arm(tuned, "plain", 65, 40),
            _arm(tuned, "rag", 95, 800),
        ],
    )
    d = _decide(version).decision
    steps = {row["arm"]: row for row in d.ladder}
    assert steps["tuned-model · rag"]["step"] == "Fine-tuned + RAG"
    assert steps["tuned-model · rag"]["previous"] == "tuned-model · plain"
    assert (
        steps["base-model · rag"]["step"] == "Retrieval (RAG)"
        and steps["base-model · rag"]["family"] == "prompting"
    )
    assert d.verdict == D.HYBRID_VERDICT and d.arm == "tuned-model · rag"
    assert d.title == "Fine-tune and keep retrieval (fine-tuned + RAG)"


def test_a_run_without_nearest_few_shot_names_it_as_not_measured(db):
    version = _suite()
    base, tuned = endpoints()
    finished_run(
        version,
        [
            _arm(base, "zero-shot", 40, 80),
            _arm(base, "few-shot", 55, 600),
            _arm(base, "few-shot-optimized", 56, 600),
            _arm(base, "system", 56, 120),
            _arm(base, "cot", 57, 150),
            _arm(base, "rag", 57, 900),
            _arm(tuned, "plain", 92, 40),
        ],
    )
    d = _decide(version).decision
    assert d.verdict == D.FINE_TUNE
    assert any(
        c.startswith("Few-shot (nearest) was not measured: this verdict is drawn without it")
        for c in d.caveats
    )


def test_the_selection_rule_is_part_of_the_decision(db):
    version = _suite()
    base, tuned = endpoints()
    finished_run(
        version, [_arm(base, "zero-shot", 40), _arm(base, "few-shot", 55), _arm(tuned, "plain", 92, 40)]
    )
    result = _decide(version)
    sel = json.loads(json.dumps(result.to_dict()))["selection"]
    assert sel["rule"] == "split" and sel["paired_cases"] == N
    assert sel["selection_cases"] + sel["confirmation_cases"] == N and not sel["flipped"]
    assert sel["sentence"] in result.decision.evidence


def test_volume_and_the_production_prompt_measured_on_captured_traffic(db):
    import uuid
    from datetime import timedelta

    from django.utils import timezone

    from evaluations.models import TrafficCall

    version = _suite()
    base, tuned = endpoints(training_cost=50)
    finished_run(
        version,
        [_arm(base, "zero-shot", 60, 80), _arm(base, "few-shot", 90, 600), _arm(tuned, "plain", 91, 40)],
    )
    suite = version.suite
    suite.traffic_endpoint = base
    suite.save(update_fields=["traffic_endpoint"])
    typed = _decide(version).decision
    assert typed.profile["monthly_volume"] == 100_000 and typed.profile["measured_endpoint"] is None
    # 600 calls over the last 10 days, production's prompt 1,000 tokens long (the suite's: 600).
    now = timezone.now()
    TrafficCall.objects.bulk_create(
        TrafficCall(call_id=uuid.uuid4().hex, endpoint=base, endpoint_name=base.name, status=200,
                    prompt_tokens=1000, completion_tokens=5, started_at=now - timedelta(days=10 * i / 600))
        for i in range(600)
    )  # fmt: skip
    TrafficCall.objects.create(  # a failed call, and one older than the window: not counted
        call_id="failed", endpoint=base, endpoint_name=base.name, status=500, started_at=now
    )
    TrafficCall.objects.create(
        call_id="old", endpoint=base, endpoint_name=base.name, status=200, started_at=now - timedelta(days=40)
    )
    d = _decide(version).decision
    assert d.profile["measured_calls"] == 600 and d.profile["measured_days"] == pytest.approx(10, abs=0.05)
    assert d.profile["monthly_volume"] == pytest.approx(600 / 10 * 30.4375, rel=0.01)
    be = d.break_even
    assert be["prompting_cost_measured"] is True
    # few-shot at production's prompt: 1000 x $1 + 5 x $2 per 1M = $0.00101; plain: $0.00005.
    assert be["prompting_cost_per_request"] == pytest.approx(0.00101)
    # the student gets production's longer inputs too: 40 + (1000 - 600) prompt tokens
    assert be["fine_tuned_cost_per_request"] == pytest.approx(0.00045)
    assert any("at the tokens production sends it" in e for e in d.evidence)
