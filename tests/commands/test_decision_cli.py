"""`manage.py breakeven` (the standalone calculator) and `manage.py decision` (the verdict on a suite)."""

from __future__ import annotations

import io
import json
from decimal import Decimal

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from tests.runs import ArmSpec, endpoints, finished_run, scores_with_mean, suite_version

TEXTBOOK = [
    "--tokens-saved", "500", "--requests-per-month", "100000", "--price-per-1k-tokens", "0.002",
    "--training-cost", "50",
]  # fmt: skip


def run_command(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


# --- breakeven ---------------------------------------------------------------------------------


def test_breakeven_textbook_case_in_words():
    out = run_command("breakeven", *TEXTBOOK)
    assert "saving per request:  $0.001 (500 tokens at $0.002 per 1K)" in out
    assert "monthly saving:      $100.00 at 100,000 requests a month" in out
    assert "break-even:          50,000 requests, 0.50 months (15.2 days)" in out
    assert "pays back within the 12-month horizon: yes (net saving over the horizon $1,150.00)" in out
    assert "pays back after 50,000 requests, 15.2 days at 100,000 requests a month" in out


def test_breakeven_textbook_case_as_json():
    result = json.loads(run_command("breakeven", *TEXTBOOK, "--json"))
    assert result["saving_per_request"] == pytest.approx(0.001)
    assert result["monthly_saving"] == pytest.approx(100.0)
    assert result["break_even_requests"] == pytest.approx(50_000)
    assert result["break_even_months"] == pytest.approx(0.5)
    assert result["break_even_days"] == pytest.approx(15.2, abs=0.05)
    assert result["pays_back_within_horizon"] is True
    assert result["horizon_months"] == 12 and result["retrains"] == 0
    assert result["reason"].startswith("pays back after 50,000 requests")


def test_breakeven_counts_retraining_and_hosting():
    args = [*TEXTBOOK, "--horizon-months", "9", "--retrains-per-year", "2", "--hosting-per-month", "10"]
    result = json.loads(run_command("breakeven", *args, "--json"))
    # One retraining within 9 months (at month 6): training 50 + 50 paid back by $100 a month
    # saved less $10 a month of hosting -> 100 / 90 months.
    assert result["retrains"] == 1
    assert result["fixed_costs"] == pytest.approx(50 + 50 + 10 * 9)
    assert result["break_even_months"] == pytest.approx(100 / 90)
    assert result["break_even_requests"] == pytest.approx(100 / 90 * 100_000)
    out = run_command("breakeven", *args)
    assert "1 retraining(s) x $50.00" in out and "hosting $10.00 a month x 9" in out
    assert "within the 9-month horizon: yes" in out


def test_breakeven_without_a_saving_never_pays_back():
    args = ["--tokens-saved", "0", *TEXTBOOK[2:]]
    out = run_command("breakeven", *args)
    assert "break-even:          never" in out
    assert "within the 12-month horizon: no" in out
    result = json.loads(run_command("breakeven", *args, "--json"))
    assert result["break_even_requests"] is None and result["break_even_days"] is None
    assert result["pays_back_within_horizon"] is False


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--tokens-saved", "-5", "--tokens-saved '-5': must be >= 0"),
        ("--tokens-saved", "abc", "--tokens-saved 'abc': not a number"),
        ("--requests-per-month", "-1", "--requests-per-month '-1': must be >= 0"),
        ("--price-per-1k-tokens", "nan", "--price-per-1k-tokens 'nan': must be a finite number"),
        ("--training-cost", "inf", "--training-cost 'inf': must be a finite number"),
        ("--training-cost", "lots", "--training-cost 'lots': not a number"),
        ("--horizon-months", "0", "--horizon-months '0': must be > 0"),
        ("--retrains-per-year", "-2", "--retrains-per-year '-2': must be >= 0"),
        ("--hosting-per-month", "x", "--hosting-per-month 'x': not a number"),
    ],
)
def test_breakeven_names_the_flag_of_a_bad_number(flag, value, message):
    args = list(TEXTBOOK)
    if flag in args:
        args[args.index(flag) + 1] = value
    else:
        args += [flag, value]
    with pytest.raises(CommandError) as err:
        call_command("breakeven", *args, stdout=io.StringIO())
    assert err.value.returncode == 2
    assert message in str(err.value)


def test_breakeven_checks_values_passed_as_keyword_arguments_too():
    with pytest.raises(CommandError, match="--tokens-saved -3"):
        call_command(
            "breakeven", tokens_saved=-3, requests_per_month=1, price_per_1k_tokens=1, training_cost=1
        )


def test_breakeven_requires_its_four_numbers():
    with pytest.raises(CommandError, match="--training-cost"):
        call_command("breakeven", *TEXTBOOK[:6], stdout=io.StringIO())


# --- decision ----------------------------------------------------------------------------------


@pytest.fixture
def prompting_suite(db):
    """Zero-shot scores 60/100, few-shot 90/100 against the default target 0.8: prompting is enough."""
    version = suite_version(test_cases=100, name="tickets", quality_target=0.8)
    base, _ = endpoints()
    run = finished_run(
        version,
        [
            ArmSpec(base, "zero-shot", scores_with_mean(100, 60), prompt_tokens=100),
            ArmSpec(base, "few-shot", scores_with_mean(100, 90), prompt_tokens=400),
        ],
    )
    return version.suite, run


def test_decision_json_says_prompting_is_enough(prompting_suite):
    suite, run = prompting_suite
    d = json.loads(run_command("decision", "--suite", "tickets", "--json"))
    assert d["verdict"] == "prompting-enough"
    assert d["suite"] == {"id": suite.pk, "name": "tickets"}
    assert d["run"]["id"] == run.pk
    assert d["arm"] and "few-shot" in d["arm"]
    assert d["title"] == "Prompting is enough"
    assert d["profile"]["quality_target"] == 0.8
    assert sorted(row["mean"] for row in d["ladder"]) == pytest.approx([0.6, 0.9])
    assert d["break_even"]["available"] is False


def test_decision_in_words(prompting_suite):
    _, run = prompting_suite
    out = run_command("decision", "--suite", "tickets")
    assert f"tickets: run #{run.pk}" in out
    assert "Prompting is enough [prompting-enough]" in out
    assert "Evidence:\n  - " in out
    assert "meets the target" in out
    assert "Break-even: No fine-tuned arm was measured" in out


def test_decision_on_a_given_run_rather_than_the_latest(prompting_suite):
    suite, run = prompting_suite
    base = run.arms.first().endpoint
    later = finished_run(
        suite.latest_version(),
        [
            ArmSpec(base, "zero-shot", scores_with_mean(100, 50)),
            ArmSpec(base, "few-shot", scores_with_mean(100, 55)),
        ],
    )
    latest = json.loads(run_command("decision", "--suite", "tickets", "--json"))
    assert latest["run"]["id"] == later.pk and latest["verdict"] != "prompting-enough"
    d = json.loads(run_command("decision", "--suite", "tickets", "--run", str(run.pk), "--json"))
    assert d["run"]["id"] == run.pk and d["verdict"] == "prompting-enough"


def test_decision_with_a_fine_tuned_arm_shows_the_break_even(db):
    version = suite_version(test_cases=100, name="support", quality_target=0.8, monthly_volume=100_000)
    base, tuned = endpoints(training_cost=50.0)
    finished_run(
        version,
        [
            ArmSpec(base, "zero-shot", scores_with_mean(100, 60), prompt_tokens=100),
            ArmSpec(base, "few-shot", scores_with_mean(100, 90), prompt_tokens=1000),
            ArmSpec(tuned, "zero-shot", scores_with_mean(100, 90), prompt_tokens=100),
        ],
    )
    d = json.loads(run_command("decision", "--suite", "support", "--json"))
    be = d["break_even"]
    assert be["available"] is True
    assert be["prompt_tokens_saved"] == pytest.approx(900)
    # 900 tokens x $1 per 1M saved a request; $50 of training: 55,556 requests
    assert be["break_even_requests"] == pytest.approx(50 / 0.0009)
    out = run_command("decision", "--suite", "support")
    assert f"Break-even: {be['fine_tuned_arm']} against {be['prompting_arm']}: pays back after 55,556" in out
    assert "(within the 12-month horizon)" in out


def test_decision_without_runs_is_no_evidence_not_an_error(db):
    suite_version(test_cases=3, name="empty")
    d = json.loads(run_command("decision", "--suite", "empty", "--json"))
    assert d["verdict"] == "no-evidence"
    assert d["run"] is None
    out = run_command("decision", "--suite", "empty")
    assert "empty: no finished run" in out and "No evidence yet [no-evidence]" in out


def test_decision_json_of_a_flat_run_is_valid(db):
    """Every arm scoring the same on every case: zero-width intervals, nothing to compare."""
    version = suite_version(test_cases=10, name="flat")
    base, _ = endpoints()
    finished_run(
        version,
        [ArmSpec(base, "zero-shot", [1.0] * 10), ArmSpec(base, "few-shot", [1.0] * 10)],
    )
    text = run_command("decision", "--suite", "flat", "--json")
    d = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))
    assert d["verdict"] == "prompting-enough"


def test_decision_json_turns_nan_and_numpy_values_into_json(db, monkeypatch):
    suite_version(test_cases=1, name="odd")

    class Odd:
        def to_dict(self):
            return {
                "verdict": "inconclusive",
                "mean": float("nan"),
                "ci": (np.float64("nan"), np.float64(0.5)),
                "gain": float("inf"),
                "significant": np.bool_(True),
                "cases": np.int64(3),
                "price": Decimal("1.50"),
            }

    monkeypatch.setattr("evaluations.selectors.decisions.suite_decision", lambda suite, run_id=None: Odd())
    text = run_command("decision", "--suite", "odd", "--json")
    d = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))
    assert d == {
        "verdict": "inconclusive",
        "mean": None,
        "ci": [None, 0.5],
        "gain": None,
        "significant": True,
        "cases": 3,
        "price": 1.5,
    }


def test_decision_for_an_unknown_suite_says_how_to_find_one(db):
    suite_version(test_cases=1, name="tickets")
    with pytest.raises(CommandError) as err:
        call_command("decision", "--suite", "nope")
    assert err.value.returncode == 2
    assert "--suite 'nope': no such suite (known: tickets;" in str(err.value)


def test_decision_for_an_unknown_suite_with_no_suites_at_all(db):
    with pytest.raises(CommandError, match="import one with import_suite"):
        call_command("decision", "--suite", "nope")


@pytest.mark.parametrize("bad", ["abc", "-1", "0"])
def test_decision_refuses_a_run_id_that_is_not_one(prompting_suite, bad):
    with pytest.raises(CommandError, match=f"--run: '{bad}' is not a run id"):
        call_command("decision", "--suite", "tickets", "--run", bad)


def test_decision_refuses_a_run_of_another_suite_or_an_unfinished_one(prompting_suite):
    _, run = prompting_suite
    suite_version(test_cases=1, name="other")
    with pytest.raises(CommandError) as err:
        call_command("decision", "--suite", "other", "--run", str(run.pk))
    assert err.value.returncode == 2
    assert f"run #{run.pk} is not a finished run of suite 'other'" in str(err.value)
    with pytest.raises(CommandError, match="is not a finished run"):
        call_command("decision", "--suite", "tickets", "--run", str(run.pk + 100))
