"""Numbers JSON and the database cannot hold, typed into the pages' forms (evaluations/forms.py): the
form says which field and what to do, nothing is stored, and no page answers a 500. The endpoint form's
params are checked against OpenAI's ranges, and unknown parameters are listed back."""

from __future__ import annotations

import json

import pytest
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from evaluations.models import AuditEvent, Case, Endpoint, Suite
from tests.factories import EndpointFactory
from tests.runs import ArmSpec, finished_run, suite_version

# As typed into a field: what float() or Decimal() would read as NaN, infinity or beyond ±1.8e308.
TYPED = ["1e400", "-1e400", "NaN", "Infinity", "inf", "1" + "0" * 400, "9" * 5000]
# As JSON typed into a JSON field.
JSON_NUMBERS = ["1e400", "-1e400", "NaN", "Infinity", "-Infinity", "1" + "0" * 400, "9" * 5000]


def short(value: object) -> str:
    text = str(value)
    return text if len(text) < 12 else f"{text[:3]}-{len(text)}-chars"


def told(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def client_(client, user):
    client.force_login(user)
    client.raise_request_exception = False  # a 500 is an answer to assert on, not an exception
    return client


ENDPOINT = {
    "name": "new-model", "provider": "openai", "model": "m", "kind": "base", "price_in": "0",
    "price_out": "0", "price_hour": "0", "hosting_monthly": "0", "max_concurrency": "4", "params": "",
}  # fmt: skip


# --- the endpoint form -------------------------------------------------------------------------------------


@pytest.mark.parametrize("number", JSON_NUMBERS, ids=short)
def test_params_with_a_number_nothing_can_store_are_refused_naming_where(client_, db, number):
    params = f'{{"temperature": 0, "extra": {{"deep": [{number}]}}}}'
    response = client_.post(reverse("evaluations:endpoint-list"), {**ENDPOINT, "params": params})
    assert response.status_code == 400
    errors = response.context["form"].errors["params"]
    assert (
        len(errors) == 1
        and errors[0].startswith("extra.deep[0]: ")
        and errors[0].endswith("give a finite number")
    )
    assert not Endpoint.objects.exists()


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"max_tokens": -1}, ["max_tokens: must be an integer of at least 1; got -1"]),
        ({"temperature": 1e308}, ["temperature: must be a number between 0 and 2; got 1e+308"]),
        ({"top_p": 2}, ["top_p: must be a number between 0 and 1; got 2"]),
        ({"max_tokens": -1, "temperature": 1e308, "top_p": 2}, ["max_tokens: ", "temperature: ", "top_p: "]),
    ],
)
def test_params_out_of_openai_ranges_are_refused_naming_them(client_, db, params, named):
    response = client_.post(reverse("evaluations:endpoint-list"), {**ENDPOINT, "params": json.dumps(params)})
    assert response.status_code == 400
    errors = response.context["form"].errors["params"]
    assert len(errors) == len(named) and all(e.startswith(n) for e, n in zip(errors, named, strict=True))
    assert not Endpoint.objects.exists()


def test_unknown_params_are_saved_and_listed_on_the_page(client_, db):
    url = reverse("evaluations:endpoint-list")
    params = {"temperature": 0, "max_tokens": 64, "top_k": 40, "foo": "x"}
    response = client_.post(url, {**ENDPOINT, "params": json.dumps(params)}, follow=True)
    assert response.redirect_chain == [(url, 302)]
    assert Endpoint.objects.get(name="new-model").params == params
    assert (
        "Endpoint new-model: unknown parameters passed as they are: foo, top_k." in response.content.decode()
    )
    plain = client_.post(url, {**ENDPOINT, "name": "plain"}, follow=True)
    assert plain.redirect_chain == [(url, 302)] and Endpoint.objects.get(name="plain").params == {}
    assert "unknown parameters" not in plain.content.decode()


@pytest.mark.parametrize(
    "field", ["price_in", "price_out", "price_hour", "hosting_monthly", "max_concurrency"]
)
@pytest.mark.parametrize("number", TYPED, ids=short)
def test_the_endpoint_form_numbers_are_refused_naming_the_field(client_, db, field, number):
    response = client_.post(reverse("evaluations:endpoint-list"), {**ENDPOINT, field: number})
    assert response.status_code == 400
    assert response.context["form"].errors[field]
    assert not Endpoint.objects.exists()


# --- a suite's settings and decision profile, an endpoint's costs ----------------------------------------


@pytest.fixture
def suite_and_endpoint(db):
    version = suite_version(test_cases=2, name="numbers")
    endpoint = EndpointFactory(name="model-a")
    finished_run(version, [ArmSpec(endpoint, "zero-shot", [1.0, 0.0])])
    return version.suite, endpoint


SETTINGS = {"description": "", "quality_target": "0.8", "pass_threshold": "0.5", "monthly_volume": "10"}


@pytest.mark.parametrize("number", JSON_NUMBERS, ids=short)
def test_default_assertions_with_such_a_number_are_not_saved(client_, suite_and_endpoint, number):
    suite, _ = suite_and_endpoint
    assertions = f'[{{"type": "similar", "value": "a", "threshold": {number}}}]'
    response = client_.post(
        reverse("evaluations:suite-settings", args=[suite.pk]), {**SETTINGS, "default_assertions": assertions}
    )
    assert response.status_code == 302
    [message] = told(response)
    assert message.startswith("Settings not saved: default_assertions: [0].threshold: "), message
    assert Suite.objects.get(pk=suite.pk).default_assertions == []


@pytest.mark.parametrize("field", ["quality_target", "pass_threshold", "monthly_volume"])
@pytest.mark.parametrize("number", [*TYPED, str(2**63), str(2**31)], ids=short)
def test_suite_settings_numbers_are_refused_naming_the_field(client_, suite_and_endpoint, field, number):
    suite, _ = suite_and_endpoint
    before = Suite.objects.filter(pk=suite.pk).values().get()
    response = client_.post(
        reverse("evaluations:suite-settings", args=[suite.pk]), {**SETTINGS, field: number}
    )
    assert response.status_code == 302
    [message] = told(response)
    assert message.startswith(f"Settings not saved: {field}: "), message
    assert Suite.objects.filter(pk=suite.pk).values().get() == before


PROFILE = {
    "quality_target": "0.8", "monthly_volume": "10", "horizon_months": "12", "retrains_per_year": "1",
    "examples_available": "", "training_price_per_1m": "1", "training_epochs": "3", "urgency": "soon",
    "monthly_budget": "",
}  # fmt: skip


@pytest.mark.parametrize(
    "field",
    ["monthly_volume", "retrains_per_year", "examples_available", "training_price_per_1m", "monthly_budget"],
)
@pytest.mark.parametrize("number", [*TYPED, str(2**63)], ids=short)
def test_the_decision_profile_refuses_them_naming_the_field(client_, suite_and_endpoint, field, number):
    suite, _ = suite_and_endpoint
    before = Suite.objects.filter(pk=suite.pk).values().get()
    response = client_.post(
        reverse("evaluations:suite-decision-profile", args=[suite.pk]), {**PROFILE, field: number}
    )
    assert response.status_code == 302
    [message] = told(response)
    assert message.startswith("Profile not saved: ") and field in message, message
    assert Suite.objects.filter(pk=suite.pk).values().get() == before


@pytest.mark.parametrize("field", ["price_in", "price_out", "price_hour", "hosting_monthly"])
@pytest.mark.parametrize("number", TYPED, ids=short)
def test_an_endpoints_costs_refuse_them(client_, suite_and_endpoint, field, number):
    suite, endpoint = suite_and_endpoint
    prefix = f"e{endpoint.pk}"
    data = {f"{prefix}-{k}": "1" for k in ("price_in", "price_out", "price_hour", "hosting_monthly")}
    data[f"{prefix}-{field}"] = number
    before = Endpoint.objects.filter(pk=endpoint.pk).values().get()
    url = reverse("evaluations:suite-decision-endpoint", args=[suite.pk, endpoint.pk])
    response = client_.post(url, data)
    assert response.status_code == 302
    [message] = told(response)
    assert message.startswith(f"Costs of {endpoint.name} not saved: ") and field in message, message
    assert Endpoint.objects.filter(pk=endpoint.pk).values().get() == before


# --- calculators and jobs ------------------------------------------------------------------------------


BREAKEVEN = {
    "tokens_saved": "100",
    "requests_per_month": "1000",
    "price_per_1k_tokens": "0.01",
    "training_cost": "5",
}


@pytest.mark.parametrize("field", list(BREAKEVEN))
@pytest.mark.parametrize("number", [*TYPED, "1e308", "1.7976931348623157e308"], ids=short)
def test_the_break_even_calculator_never_fails(client_, db, field, number):
    response = client_.get(reverse("evaluations:breakeven"), {**BREAKEVEN, field: number})
    assert response.status_code in (200, 400)
    if response.status_code == 400:
        assert response.context["form"].errors


@pytest.mark.parametrize("field", ["seed", "learning_rate", "epochs", "rank"])
@pytest.mark.parametrize("number", [*TYPED, str(2**63)], ids=short)
def test_a_fine_tune_refuses_them_naming_the_field(client_, db, field, number):
    version = suite_version(test_cases=2, train_cases=2, name="ft")
    base = EndpointFactory(name="local", provider="local", model="smollm2-135m-instruct", base_url="")
    data = {
        "suite_version": version.pk, "base_endpoint": base.pk, "epochs": "1", "learning_rate": "0.001",
        "rank": "8", "alpha": "16", "target_modules": "q_proj", "batch_size": "8", "max_length": "64",
        "seed": "0",
    }  # fmt: skip
    response = client_.post(reverse("evaluations:finetune-list"), {**data, field: number})
    assert response.status_code == 400
    assert response.context["form"].errors[field]


# --- the upload page ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("number", JSON_NUMBERS, ids=short)
def test_an_uploaded_file_with_such_a_number_is_refused_and_nothing_is_written(client_, db, number):
    data = '{"input": "q", "expected": "a"}\n'
    data += f'{{"input": "r", "expected": "b", "metadata": {{"n": {number}}}}}\n'
    upload = SimpleUploadedFile("cases.jsonl", data.encode())
    events = AuditEvent.objects.count()
    response = client_.post(reverse("evaluations:suite-upload"), {"name": "numbers", "file": upload})
    assert response.status_code == 400
    [error] = response.context["errors"]
    assert error.startswith("cases.jsonl, line 2, field 'metadata.n': ")
    assert error.endswith("write a finite number, or put the value in quotes to keep it as text")
    assert not Suite.objects.exists() and not Case.objects.exists() and AuditEvent.objects.count() == events


@pytest.mark.parametrize("number", TYPED, ids=short)
def test_the_upload_pages_test_fraction_refuses_them(client_, db, number):
    upload = SimpleUploadedFile("cases.csv", b"input,expected\nq,a\nr,b\n")
    response = client_.post(
        reverse("evaluations:suite-upload"), {"name": "numbers", "file": upload, "test_fraction": number}
    )
    assert response.status_code == 400 and response.context["form"].errors["test_fraction"]
    assert not Suite.objects.exists()
