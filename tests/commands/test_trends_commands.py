"""`manage.py seed_trends` (bench data for the trends page) and `manage.py trends` (counts, backfill)."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from evaluations.models import Run, TrendPoint
from tests.factories import EndpointFactory
from tests.runs import ArmSpec, finished_run, scores_with_mean, suite_version


def run_command(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_seed_trends_seeds_once_and_names_the_page(db):
    out = run_command("seed_trends", "--days", "12", "--arms", "3", "--suite", "nightly")
    assert "nightly: 12 runs and 36 trend points added" in out
    assert "/trends/" in out
    out = run_command("seed_trends", "--days", "12", "--arms", "3", "--suite", "nightly")
    assert "nightly: 0 runs and 0 trend points added" in out
    assert Run.objects.count() == 12 and TrendPoint.objects.count() == 36


def test_seed_trends_refuses_more_arms_than_it_has(db):
    with pytest.raises(CommandError, match="arms must be between 1 and 10") as exc:
        run_command("seed_trends", "--arms", "12")
    assert exc.value.returncode == 2
    assert not Run.objects.exists()


def test_trends_backfill_records_runs_finished_before_trend_points(db):
    version = suite_version(test_cases=4)
    endpoint = EndpointFactory(name="legacy")
    for right in (1, 2, 3):
        finished_run(version, [ArmSpec(endpoint, "zero-shot", scores_with_mean(4, right))])
    assert "No trend points yet" in run_command("trends")
    assert run_command("trends", "--backfill") == "Trend points recorded for 3 runs.\n"
    assert TrendPoint.objects.count() == 3
    assert "every succeeded run already had them" in run_command("trends", "--backfill")
    assert f"{version.suite.name}: 3 points, latest" in run_command("trends", "--suite", version.suite.name)


def test_trends_names_an_unknown_suite(db):
    with pytest.raises(CommandError, match="--suite 'nope': no such suite"):
        run_command("trends", "--backfill", "--suite", "nope")
