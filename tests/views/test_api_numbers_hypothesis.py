"""Hypothesis against every API route of the OpenAPI schema that takes a JSON body: numbers at the
edges (1e400, -1e400, 1e308, the largest and smallest doubles, -0.0, 1e-400, 2**63, 2**64, integers of
400 and 5,000 digits, NaN, Infinity and -Infinity as JSON literals, any float or integer) written as JSON
text into the bodies, at any property of the route's schema and nested in the JSON ones (params). The
bodies are a valid request with one to three values swapped (so the numbers reach the serializers and
services), or the schema's properties filled at random. No answer may be a 5xx, every 400 is the API's
JSON error, and nothing stored afterwards holds a number JSON cannot.

schemathesis (test_api_schemathesis.py) generates bodies from the schema as Python values, which
cannot carry 1e400 nor NaN as JSON text; this test writes the text itself. The upload (multipart) gets
the same numbers inside its JSON Lines file.
"""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evaluations.models import Case, Endpoint, Finding, FindingKind, Schedule, Severity, Suite
from evaluations.services.schedules import schedule_create
from evaluations.services.tokens import api_token_create
from tests.factories import EndpointFactory, strategy
from tests.runs import ArmSpec, finished_run, suite_version

pytestmark = pytest.mark.django_db

EDGES = [
    "1e400", "-1e400", "1e308", "-1e308", "1.7976931348623157e308", "-1.7976931348623157e308",
    "1.8e308", "-0.0", "0", "5e-324", "1e-400", "-1e-400", str(2**63 - 1), str(2**63),
    str(-(2**63) - 1), str(2**64), "1" + "0" * 400, "-" + "9" * 5000, "NaN", "Infinity", "-Infinity",
    "1", "-1", "0.5", "2", "256",
]  # fmt: skip
OPENAI_KEYS = [
    "temperature", "top_p", "max_tokens", "max_completion_tokens", "presence_penalty",
    "frequency_penalty", "n", "seed", "logprobs", "top_logprobs", "stop", "logit_bias", "top_k", "extra",
]  # fmt: skip
SETTINGS = settings(
    max_examples=40, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)

number = st.one_of(
    st.sampled_from(EDGES),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),  # a float's repr is JSON text
    st.integers().map(str),
)
leaf = st.one_of(
    number, number, st.sampled_from(["true", "false", "null"]), st.text(max_size=8).map(json.dumps)
)


def _object(pairs: dict) -> str:
    return "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in pairs.items()) + "}"


value = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda items: "[" + ", ".join(items) + "]"),
        st.dictionaries(st.sampled_from(OPENAI_KEYS), inner, max_size=4).map(_object),
    ),
    max_leaves=8,
)


def resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def paths_of(schema: dict, body: dict) -> list[tuple]:
    """Where a value can go in a body of this schema: each property, each key of the JSON ones
    (``params.seed``), each property of the first item of a list of objects (``arms.0.endpoint``)."""
    paths: list[tuple] = []
    for name, prop in resolve(schema, body).get("properties", {}).items():
        prop = resolve(schema, prop)
        paths.append((name,))
        if prop.get("type") == "object":
            paths += [(name, key) for key in OPENAI_KEYS]
        if prop.get("type") == "array" and resolve(schema, prop.get("items", {})).get("properties"):
            paths += [(name, 0, sub) for sub in resolve(schema, prop["items"])["properties"]]
    return paths


def put(body: object, path: tuple, hole: str) -> object:
    """`body` with `hole` at `path`, the containers on the way made where missing."""
    if not path:
        return hole
    head, rest = path[0], path[1:]
    if isinstance(head, int):
        items = list(body) if isinstance(body, list) else []
        items += [{}] * (head + 1 - len(items))
        items[head] = put(items[head], rest, hole)
        return items
    node = dict(body) if isinstance(body, dict) else {}
    node[head] = put(node.get(head, {}), rest, hole)
    return node


def mutated(base: dict, paths: list[tuple]):
    """A valid body with one to three of its values (or new ones) swapped for JSON text."""
    swaps = st.lists(st.tuples(st.sampled_from(paths), value), min_size=1, max_size=3)

    def build(chosen) -> str:
        body = base
        for i, (path, _) in enumerate(chosen):
            body = put(body, path, f"__hole{i}__")
        text = json.dumps(body)
        for i, (_, written) in enumerate(chosen):
            text = text.replace(json.dumps(f"__hole{i}__"), written)
        return text

    return swaps.map(build)


def random_body(schema: dict, body: dict):
    properties = resolve(schema, body).get("properties", {})
    return st.dictionaries(st.sampled_from(sorted(properties) or ["x"]), value, max_size=5).map(_object)


@pytest.fixture
def seeded(db, task_queue):
    version = suite_version(test_cases=2, name="edges")
    endpoint = EndpointFactory(name="model-a", params={"temperature": 0})
    run = finished_run(version, [ArmSpec(endpoint, "zero-shot", [1.0, 0.0])])
    finding = Finding.objects.create(
        suite=version.suite, run=run, arm=run.arms.first(), kind=FindingKind.REGRESSION,
        severity=Severity.WARNING, title="score fell", details={},
    )  # fmt: skip
    schedule = schedule_create(suite=version.suite, name="nightly", arms=[(endpoint, strategy("zero-shot"))])
    arm = {"endpoint": endpoint.pk, "strategy": strategy("zero-shot").pk}
    ids = {"suites": version.suite.pk, "endpoints": endpoint.pk, "runs": run.pk, "findings": finding.pk}
    ids["schedules"] = schedule.pk
    # A valid body of each route (the schema's path and method); a route not listed starts from {}.
    bases = {
        ("post", "/api/v1/endpoints/"): {
            "name": "new-model", "provider": "openai", "model": "m", "params": {"temperature": 0},
        },
        ("patch", "/api/v1/endpoints/{id}/"): {"params": {"temperature": 0, "max_tokens": 8}},
        ("post", "/api/v1/runs/"): {"suite": version.suite.pk, "arms": [arm], "repeats": 1},
        ("post", "/api/v1/schedules/"): {"suite": version.suite.pk, "name": "weekly", "arms": [arm]},
        ("patch", "/api/v1/schedules/{id}/"): {"repeats": 2},
        ("post", "/api/v1/findings/{id}/acknowledge/"): {"comment": "seen"},
        ("post", "/api/v1/runs/{id}/signoff/"): {"note": "ok"},
        ("post", "/api/v1/runs/{id}/reviews/"): {
            "result": run.arms.first().results.first().pk, "verdict": "correct",
        },
    }  # fmt: skip
    return ids, bases


def json_safe_everywhere() -> None:
    """Nothing stored holds a number JSON cannot (and it reads back)."""
    for endpoint in Endpoint.objects.all():
        json.dumps(endpoint.params, allow_nan=False)
    for case in Case.objects.all():
        json.dumps([case.metadata, case.assertions, case.expected], allow_nan=False)
    for schedule in Schedule.objects.all():
        assert 1 <= schedule.repeats <= 20


def test_edge_numbers_in_every_body_never_give_a_5xx(client, user, seeded):
    ids, bases = seeded
    client.raise_request_exception = False
    auth = {"HTTP_AUTHORIZATION": f"Bearer {api_token_create(user=user, name='edges')[1]}"}
    schema = client.get("/api/schema/?format=json", **auth).json()
    operations = [
        (method, path, operation["requestBody"]["content"]["application/json"]["schema"])
        for path, methods in schema["paths"].items()
        for method, operation in methods.items()
        if "application/json" in (operation.get("requestBody") or {}).get("content", {})
    ]
    assert len(operations) >= 10
    failures: dict[str, str] = {}
    calls, answers = 0, {}

    def exercise(method: str, path: str, body_schema: dict) -> None:
        url = path.replace("{id}", str(ids.get(path.split("/")[3], 1)))
        label = f"{method.upper()} {url}"
        base = bases.get((method, path), {})
        bodies = st.one_of(
            mutated(base, paths_of(schema, body_schema)), random_body(schema, body_schema), number
        )

        @SETTINGS
        @given(body=bodies)
        def call(body):
            nonlocal calls
            calls += 1
            response = getattr(client, method)(url, body, content_type="application/json", **auth)
            answers.setdefault(label, set()).add(response.status_code)
            if response.status_code >= 500:
                failures.setdefault(label, f"{response.status_code} for {body[:300]}")
            elif response.status_code == 400 and not isinstance(response.json().get("detail"), str):
                failures.setdefault(label, f"400 without a detail for {body[:300]}: {response.content[:300]}")

        call()

    for method, path, body_schema in operations:
        exercise(method, path, body_schema)

    assert not failures, "\n".join(f"{label}: {text}" for label, text in failures.items())
    assert calls >= 30 * len(operations)
    # The swapped bodies get through too (a 2xx), not only refused: the numbers reach the services.
    assert 200 in answers[f"PATCH /api/v1/endpoints/{ids['endpoints']}/"], answers
    json_safe_everywhere()


@SETTINGS
@given(
    numbers=st.lists(number, min_size=1, max_size=3), where=st.sampled_from(["metadata", "extra", "assert"])
)
def test_edge_numbers_inside_an_uploaded_file_never_give_a_5xx(client, user, numbers, where):
    client.raise_request_exception = False
    client.force_login(user)
    if where == "metadata":
        record = f'{{"input": "q", "expected": "a", "metadata": {{"n": [{", ".join(numbers)}]}}}}'
    elif where == "extra":
        record = f'{{"input": "q", "expected": "a", "n": {numbers[0]}}}'
    else:
        similar = f'{{"type": "similar", "value": "a", "threshold": {numbers[0]}}}'
        record = f'{{"input": "q", "assertions": [{similar}]}}'
    upload = SimpleUploadedFile("cases.jsonl", (record + "\n").encode())
    response = client.post("/api/v1/suites/", {"name": "edges", "file": upload})
    assert response.status_code in (201, 400), response.content
    if response.status_code == 400:
        assert isinstance(response.json()["detail"], str)
    json_safe_everywhere()
    Suite.objects.all().delete()
