"""Numbers JSON and the database cannot hold, sent to every API v1 route that takes a body: a 400 in the
API's error shape naming the field, and nothing stored. Endpoint params outside OpenAI's ranges are
refused the same way; unknown ones are kept and listed back as warnings."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from evaluations.models import (
    AuditEvent,
    Case,
    Endpoint,
    Finding,
    FindingKind,
    Review,
    Run,
    Schedule,
    Severity,
    SignOff,
    Suite,
    SuiteVersion,
)
from evaluations.services.schedules import schedule_create
from evaluations.services.tokens import api_token_create
from tests.factories import EndpointFactory, strategy
from tests.runs import ArmSpec, finished_run, suite_version

V1 = "/api/v1"
JSON = "application/json"
# As JSON text: what Python's json would turn into NaN or infinity, or an integer int() refuses.
LITERALS = ["1e400", "-1e400", "NaN", "Infinity", "1" + "0" * 400]
HOLE = "__number__"


@pytest.fixture
def api(client, user):
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {api_token_create(user=user, name='numbers')[1]}"
    return client


@pytest.fixture
def seeded(db, task_queue):
    version = suite_version(test_cases=2, name="numbers")
    endpoint = EndpointFactory(name="model-a", params={"temperature": 0, "max_tokens": 64})
    zero_shot = strategy("zero-shot")
    run = finished_run(version, [ArmSpec(endpoint, "zero-shot", [1.0, 0.0])])
    finding = Finding.objects.create(
        suite=version.suite, run=run, arm=run.arms.first(), kind=FindingKind.REGRESSION,
        severity=Severity.WARNING, title="score fell", details={},
    )  # fmt: skip
    schedule = schedule_create(suite=version.suite, name="nightly", arms=[(endpoint, zero_shot)])
    return {
        "version": version, "endpoint": endpoint, "strategy": zero_shot, "run": run, "finding": finding,
        "schedule": schedule, "result": run.arms.first().results.first(),
    }  # fmt: skip


def stored() -> dict:
    """What the database holds that a refused request must leave as it was."""
    return {
        "endpoints": list(Endpoint.objects.order_by("pk").values()),
        "schedules": list(Schedule.objects.order_by("pk").values()),
        "runs": Run.objects.count(),
        "findings": list(Finding.objects.order_by("pk").values("acknowledged_at", "comment")),
        "reviews": Review.objects.count(),
        "signoffs": SignOff.objects.count(),
        "suites": (Suite.objects.count(), SuiteVersion.objects.count(), Case.objects.count()),
        "audit": AuditEvent.objects.count(),
    }


def _arm(s: dict) -> dict:
    return {"endpoint": s["endpoint"].pk, "strategy": s["strategy"].pk}


ENDPOINT_FIELDS = [
    "params.temperature", "params.seed", "params.max_tokens", "params.logit_bias.50256", "params.extra.deep",
    "price_in", "price_out", "price_hour", "hosting_monthly", "max_concurrency", "timeout_seconds", "name",
]  # fmt: skip
# Every API v1 route that takes a JSON body: (method, its path, a valid body, the paths in the body that
# take a number or hold JSON), the ids from the `seeded` fixture.
ROUTES = {
    "endpoint_create": (
        "post",
        lambda s: f"{V1}/endpoints/",
        lambda s: {"name": "new-model", "provider": "openai", "model": "m", "params": {"temperature": 0}},
        [*ENDPOINT_FIELDS, "training_cost", "base_endpoint"],
    ),
    "endpoint_update": (
        "patch",
        lambda s: f"{V1}/endpoints/{s['endpoint'].pk}/",
        lambda s: {"params": {"temperature": 0}},
        ENDPOINT_FIELDS,
    ),
    "run_create": (
        "post",
        lambda s: f"{V1}/runs/",
        lambda s: {"suite": s["version"].suite.pk, "arms": [_arm(s)], "repeats": 1},
        ["suite", "suite_version", "arms[0].endpoint", "arms[0].strategy", "repeats", "use_cache"],
    ),
    "schedule_create": (
        "post",
        lambda s: f"{V1}/schedules/",
        lambda s: {"suite": s["version"].suite.pk, "name": "weekly", "arms": [_arm(s)]},
        ["suite", "name", "arms[0].endpoint", "repeats", "suite_version", "enabled", "cron"],
    ),
    "schedule_update": (
        "patch",
        lambda s: f"{V1}/schedules/{s['schedule'].pk}/",
        lambda s: {"repeats": 2},
        ["repeats", "suite_version", "arms[0].strategy", "timezone"],
    ),
    "finding_acknowledge": (
        "post",
        lambda s: f"{V1}/findings/{s['finding'].pk}/acknowledge/",
        lambda s: {"comment": "seen"},
        ["comment"],
    ),
    "signoff_request": (
        "post",
        lambda s: f"{V1}/runs/{s['run'].pk}/signoff/",
        lambda s: {"note": "ok"},
        ["note"],
    ),
    "review_save": (
        "post",
        lambda s: f"{V1}/runs/{s['run'].pk}/reviews/",
        lambda s: {"result": s["result"].pk, "verdict": "correct"},
        ["result"],
    ),
}


def with_hole(body: dict, path: str) -> dict:
    """`body` with HOLE at `path` (``arms[0].endpoint``, ``params.seed``), made where missing."""
    body = json.loads(json.dumps(body))
    node = body
    parts = path.replace("[", ".[").split(".")
    for part, following in zip(parts, [*parts[1:], None], strict=True):
        key = int(part[1:-1]) if part.startswith("[") else part
        if following is None:
            node[key] = HOLE
        else:
            if isinstance(key, int):
                while len(node) <= key:
                    node.append({})
            elif key not in node or not isinstance(node[key], dict | list):
                node[key] = [] if following.startswith("[") else {}
            node = node[key]
    return body


def send(api, method: str, url: str, body: dict, literal: str):
    text = json.dumps(body).replace(json.dumps(HOLE), literal)
    return getattr(api, method)(url, text, content_type=JSON)


def short(literal: str) -> str:
    return literal if len(literal) < 12 else f"{literal[:3]}-{len(literal)}-chars"


@pytest.mark.parametrize(
    ("route", "path", "literal"),
    [
        (route, path, literal)
        for route, (*_, paths) in ROUTES.items()
        for path in paths
        for literal in LITERALS
    ],
    ids=lambda value: short(str(value)),
)
def test_a_number_nothing_can_store_is_a_400_naming_the_field_and_nothing_is_stored(
    api, seeded, route, path, literal
):
    method, url, body, _ = ROUTES[route]
    before = stored()
    response = send(api, method, url(seeded), with_hole(body(seeded), path), literal)
    assert response.status_code == 400, response.content
    assert response["Content-Type"].startswith(JSON)
    answer = response.json()
    assert answer["detail"].startswith(f"{path}: "), answer
    assert "send a finite number" in answer["detail"] and "errors" in answer
    assert stored() == before


@pytest.mark.parametrize("literal", ["-Infinity", "-" + "9" * 5000, "1e99999"], ids=short)
@pytest.mark.parametrize("route", ["endpoint_create", "endpoint_update"])
def test_other_spellings_are_refused_as_well(api, seeded, route, literal):
    method, url, body, _ = ROUTES[route]
    before = stored()
    response = send(api, method, url(seeded), with_hole(body(seeded), "params.seed"), literal)
    assert response.status_code == 400 and response.json()["detail"].startswith("params.seed: ")
    assert stored() == before


def test_the_issue_a_seed_of_1e400_is_refused_naming_params_seed(api, seeded):
    url = f"{V1}/endpoints/{seeded['endpoint'].pk}/"
    response = api.patch(url, '{"params": {"seed": 1e400}}', content_type=JSON)
    assert response.status_code == 400
    assert response.json() == {
        "detail": "params.seed: 1e400 is too large for JSON and the database (the limit is ±1.8e308); "
        "send a finite number (or the value as a string)",
        "errors": {
            "params": {
                "seed": [
                    "1e400 is too large for JSON and the database (the limit is ±1.8e308); "
                    "send a finite number (or the value as a string)"
                ]
            }
        },
    }
    assert Endpoint.objects.get(pk=seeded["endpoint"].pk).params == {"temperature": 0, "max_tokens": 64}


def test_every_bad_number_of_a_body_is_named(api, seeded):
    body = (
        '{"name": "x", "provider": "openai", "model": "m", "params": {"temperature": -1e400, "stop": [NaN]}}'
    )
    response = api.post(f"{V1}/endpoints/", body, content_type=JSON)
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert (
        detail.startswith("params.temperature: -1e400 is too large")
        and "params.stop[0]: NaN is not" in detail
    )


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"max_tokens": -1}, ["params.max_tokens: must be an integer of at least 1; got -1"]),
        ({"temperature": 1e308}, ["params.temperature: must be a number between 0 and 2; got 1e+308"]),
        ({"top_p": 2}, ["params.top_p: must be a number between 0 and 1; got 2"]),
        (
            {"max_tokens": -1, "temperature": 1e308, "top_p": 2},
            ["params.max_tokens: must be", "params.temperature: must be", "params.top_p: must be"],
        ),
    ],
)
@pytest.mark.parametrize("method", ["post", "patch"])
def test_params_out_of_openai_ranges_are_refused_naming_them(api, seeded, params, named, method):
    before = stored()
    if method == "post":
        body = {"name": "new", "provider": "openai", "model": "m", "params": params}
        response = api.post(f"{V1}/endpoints/", body, content_type=JSON)
    else:
        response = api.patch(
            f"{V1}/endpoints/{seeded['endpoint'].pk}/", {"params": params}, content_type=JSON
        )
    assert response.status_code == 400, response.content
    detail = response.json()["detail"]
    for text in named:
        assert text in detail, detail
    assert stored() == before


def test_unknown_params_are_kept_and_listed_back(api, seeded):
    url = f"{V1}/endpoints/{seeded['endpoint'].pk}/"
    response = api.patch(url, {"params": {"temperature": 0.2, "foo": 1, "bar": [1]}}, content_type=JSON)
    assert response.status_code == 200, response.content
    assert response.json()["params"] == {"temperature": 0.2, "foo": 1, "bar": [1]}
    assert response.json()["warnings"] == ["unknown parameters passed as they are: bar, foo"]
    assert api.get(url).json()["warnings"] == ["unknown parameters passed as they are: bar, foo"]
    created = api.post(
        f"{V1}/endpoints/",
        {"name": "vllm", "provider": "openai", "model": "m", "params": {"max_tokens": 32, "top_k": 40}},
        content_type=JSON,
    )
    assert created.status_code == 201 and created.json()["warnings"] == [
        "unknown parameters passed as they are: top_k"
    ]
    known = api.patch(url, {"params": {"temperature": 0}}, content_type=JSON)
    assert known.json()["warnings"] == []


def test_numbers_at_the_edges_that_fit_are_taken(api, seeded):
    url = f"{V1}/endpoints/{seeded['endpoint'].pk}/"
    body = (
        '{"params": {"seed": 9223372036854775807, "temperature": -0.0, "x": 1e308, "y": 5e-324, "z": 1e-400}}'
    )
    response = api.patch(url, body, content_type=JSON)
    assert response.status_code == 200, response.content
    stored = Endpoint.objects.get(pk=seeded["endpoint"].pk).params
    assert stored["seed"] == 2**63 - 1
    # PostgreSQL's jsonb keeps numbers as numeric and writes 1e308 back out with all its digits
    # (read as an int): the same number, compared as one.
    assert {k: float(v) for k, v in stored.items()} == {
        "seed": float(2**63 - 1), "temperature": 0.0, "x": 1e308, "y": 5e-324, "z": 0.0,
    }  # fmt: skip


# --- the upload (multipart: its fields, and the numbers inside its files) -----------------------------


UPLOADS = [  # (file, its text with {n} for the number, where the error is)
    (
        "cases.jsonl",
        '{{"input": "q", "expected": "a", "metadata": {{"big": {n}}}}}\n',
        "line 1, field 'metadata.big'",
    ),
    (
        "cases.jsonl",
        '{{"input": "q", "expected": "a"}}\n{{"input": "r", "expected": "b", "big": {n}}}\n',
        "line 2, field 'big'",
    ),
    ("cases.csv", 'input,expected,metadata\nq,a,"{{""big"": {n}}}"\n', "line 2, field 'metadata.big'"),
    (
        "goldens.json",
        '[{{"input": "q", "expected_output": "a", "additional_metadata": {{"x": [{n}]}}}}]',
        "line 1, field 'additional_metadata.x[0]'",
    ),
    (
        "tests.jsonl",
        '{{"vars": {{"q": {n}}}, "assert": [{{"type": "equals", "value": "a"}}]}}\n',
        "line 1, field 'vars.q'",
    ),
]


@pytest.mark.parametrize("literal", ["1e400", "-1e400", "NaN", "Infinity", "1" + "0" * 400], ids=short)
@pytest.mark.parametrize(("name", "template", "where"), UPLOADS)
def test_an_uploaded_case_with_such_a_number_is_refused_naming_file_line_and_field(
    api, db, name, template, where, literal
):
    upload = SimpleUploadedFile(name, template.format(n=literal).encode())
    response = api.post(f"{V1}/suites/", {"name": "numbers", "file": upload})
    assert response.status_code == 400, response.content
    answer = response.json()
    assert answer["detail"].startswith(f"{name}: 1 error found")
    assert len(answer["errors"]) == 1 and answer["errors"][0].startswith(f"{name}, {where}: ")
    assert "write a finite number, or put the value in quotes to keep it as text" in answer["errors"][0]
    assert not Suite.objects.exists() and not Case.objects.exists()


@pytest.mark.parametrize("field", ["test_fraction", "seed"])
@pytest.mark.parametrize("literal", ["1e400", "-1e400", "NaN", "Infinity", "1" + "0" * 400], ids=short)
def test_the_upload_fields_refuse_such_numbers(api, db, field, literal):
    upload = SimpleUploadedFile("cases.csv", b"input,expected\nq,a\nr,b\n")
    response = api.post(f"{V1}/suites/", {"name": "numbers", "file": upload, field: literal})
    assert response.status_code == 400, response.content
    assert response.json()["detail"].startswith(f"{field}: ")
    assert not Suite.objects.exists()


@pytest.mark.parametrize("charset", ["rot13", "zlib", "bz2", "no-such-charset"])
def test_a_body_in_a_charset_that_is_no_text_encoding_is_a_400_not_a_500(api, db, charset):
    response = api.generic(  # generic: the client sends the bytes as they are, whatever the charset
        "POST", f"{V1}/endpoints/", b'{"name": "x"}', content_type=f"application/json; charset={charset}"
    )
    assert response.status_code == 400, response.content
    if charset != "no-such-charset":  # Django ignores a charset it does not know (UTF-8 then)
        assert response.json()["detail"] == (
            f"JSON parse error - the charset {charset!r} is not a text encoding: send UTF-8"
        )
