"""schemathesis against the API, in-process: the schema is loaded from the WSGI app with a real token,
and every operation is called with generated data, valid and invalid. No answer may be a 500, and
every answer must be one the schema documents (status code, content type and body schema).

Each operation gets its own bounded Hypothesis run (schemathesis' `as_strategy`), so one test covers
them all and reports every operation that failed, with the request that showed it.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from evaluations.models import Finding, FindingKind, Severity
from evaluations.services.schedules import schedule_create
from evaluations.services.tokens import api_token_create
from tests.factories import EndpointFactory, strategy
from tests.runs import ArmSpec, finished_run, scores_with_mean, suite_version

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = {GenerationMode.POSITIVE: 12, GenerationMode.NEGATIVE: 6}


@pytest.fixture
def seeded(db):
    """A suite with a version, an endpoint, a strategy, a baseline and a later finished run, a finding
    and a schedule: ids the generated requests are pointed at (see `point_at_seeded`)."""
    version = suite_version(test_cases=4, train_cases=2, name="schemathesis")
    endpoint = EndpointFactory(name="st-model", api_key_env="ST_KEY")
    baseline = finished_run(version, [ArmSpec(endpoint, "zero-shot", [1.0] * 4)])
    run = finished_run(version, [ArmSpec(endpoint, "zero-shot", scores_with_mean(4, 1))])
    finding = Finding.objects.create(
        suite=version.suite, run=run, arm=run.arms.first(), baseline_run=baseline,
        kind=FindingKind.REGRESSION, severity=Severity.WARNING, title="score fell",
        details={"p_value": 0.01, "diff": -0.75},
    )  # fmt: skip
    schedule = schedule_create(suite=version.suite, name="nightly", arms=[(endpoint, strategy("zero-shot"))])
    return {
        "suites": version.suite.pk, "endpoints": endpoint.pk, "strategies": strategy("zero-shot").pk,
        "runs": run.pk, "findings": finding.pk, "schedules": schedule.pk, "number": version.number,
    }  # fmt: skip


@pytest.fixture
def in_process(settings):
    """Django closes the DB connection when a request ends; in-process that is the test's own
    connection (and its transaction): Django's test client turns this off the same way."""
    settings.ALLOWED_HOSTS = ["localhost"]
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def point_at_seeded(seeded: dict):
    """Generated ids are nearly all unknown (a 404 each): every other one becomes a seeded object's id,
    so operations also run on real suites, runs, findings and schedules."""

    def map_path_parameters(context, path_parameters):
        resource = context.operation.path.split("/")[3] if context.operation else ""
        out = dict(path_parameters or {})
        if isinstance(out.get("id"), int) and out["id"] % 2 == 0 and resource in seeded:
            out["id"] = seeded[resource]
        if isinstance(out.get("number"), int) and out["number"] % 2 == 0:
            out["number"] = seeded["number"]
        return out

    return map_path_parameters


def test_the_api_answers_every_generated_request_as_documented(db, user, seeded, in_process, task_queue):
    from ftvp_site.wsgi import application

    _, token = api_token_create(user=user, name="schemathesis")
    auth = {"Authorization": f"Bearer {token}"}
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application, headers=auth)
    schema.hook(point_at_seeded(seeded))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 30  # every v1 operation, the decision, the legacy run list and the schema
    failures: dict[str, str] = {}
    calls = 0

    def exercise(operation, mode, examples: int) -> None:
        label = f"{operation.label} ({mode})"

        @settings(
            max_examples=examples, deadline=None, derandomize=True, database=None,
            suppress_health_check=list(HealthCheck),
        )  # fmt: skip
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case):
            nonlocal calls
            if label in failures:
                return
            calls += 1
            response = case.call(headers=auth)
            try:
                case.validate_response(response, checks=CHECKS)
            except (AssertionError, FailureGroup) as exc:  # reported below, with the request
                curl = case.as_curl_command(headers=auth)
                failures[label] = f"{type(exc).__name__}: {str(exc)[:1500]}\n  curl: {curl}"

        run()

    for operation in operations:
        for mode, examples in EXAMPLES.items():
            exercise(operation, mode, examples)

    assert calls > 200
    assert not failures, "\n\n".join(f"{label}\n{text}" for label, text in failures.items())
