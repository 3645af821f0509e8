"""An endpoint's generation params (services/endpoints.py `params_check`): OpenAI's chat completion
parameters within their ranges, numbers JSON and the database can hold, unknown keys kept and listed.
The API, the endpoint page and `add_endpoint` all go through it."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from evaluations import jsonsafe
from evaluations.models import AuditEvent, Endpoint
from evaluations.services.endpoints import (
    endpoint_create,
    endpoint_update,
    params_check,
    params_warnings,
)

VALID = {
    "temperature": 0,
    "top_p": 1,
    "max_tokens": 1,
    "max_completion_tokens": 4096,
    "presence_penalty": -2,
    "frequency_penalty": 2.0,
    "n": 128,
    "seed": -(2**63),
    "logprobs": True,
    "top_logprobs": 20,
    "stop": ["\n", "###", "END", "</s>"],
    "logit_bias": {"50256": -100, "11": 100},
    "response_format": {"type": "json_object"},
    "reasoning_effort": "low",
    "user": "ftvp",
    "store": False,
    "parallel_tool_calls": True,
    "metadata": {"team": "evals"},
    "tools": [],
    "tool_choice": "none",
    "stream": False,
}


def test_every_openai_parameter_at_the_edges_of_its_range_is_kept():
    assert params_check(VALID) == VALID
    assert params_check(
        {"temperature": 2, "top_p": 0, "seed": 2**63 - 1, "top_logprobs": 0, "logprobs": True}
    )
    assert params_check({"temperature": None, "max_tokens": None, "stop": "END"})
    assert params_check(None) == {} and params_check({}) == {}


def test_whole_floats_become_integers():
    assert params_check({"max_tokens": 256.0, "n": 2.0, "seed": -1.0}) == {
        "max_tokens": 256,
        "n": 2,
        "seed": -1,
    }


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"max_tokens": -1}, "params.max_tokens", "must be an integer of at least 1; got -1"),
        ({"max_tokens": 0}, "params.max_tokens", "at least 1"),
        ({"max_tokens": 1.5}, "params.max_tokens", "must be an integer"),
        ({"max_tokens": 1e308}, "params.max_tokens", "got 1e+308"),
        ({"max_tokens": "256"}, "params.max_tokens", "got a string"),
        ({"max_completion_tokens": 0}, "params.max_completion_tokens", "at least 1"),
        ({"temperature": 1e308}, "params.temperature", "must be a number between 0 and 2; got 1e+308"),
        ({"temperature": -0.1}, "params.temperature", "between 0 and 2"),
        ({"temperature": True}, "params.temperature", "got true"),
        ({"top_p": 2}, "params.top_p", "must be a number between 0 and 1; got 2"),
        ({"presence_penalty": -2.5}, "params.presence_penalty", "between -2 and 2"),
        ({"frequency_penalty": 3}, "params.frequency_penalty", "between -2 and 2"),
        ({"n": 0}, "params.n", "between 1 and 128"),
        ({"n": 129}, "params.n", "between 1 and 128"),
        ({"seed": 2**63}, "params.seed", "between -2^63 and 2^63-1"),
        ({"seed": -(2**63) - 1}, "params.seed", "64-bit"),
        ({"seed": 1.5}, "params.seed", "must be an integer"),
        ({"logprobs": 1}, "params.logprobs", "must be true or false; got 1"),
        ({"top_logprobs": 21, "logprobs": True}, "params.top_logprobs", "between 0 and 20"),
        ({"top_logprobs": 5}, "params.top_logprobs", "needs logprobs: true"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "params.stop", "up to 4 stop sequences; got 5"),
        ({"stop": [1]}, "params.stop", "a string or a list of up to 4 strings"),
        ({"logit_bias": {"50256": 101}}, "params.logit_bias", "between -100 and 100"),
        ({"logit_bias": {"hello": 1}}, "params.logit_bias", "is not a token id"),
        ({"response_format": {"type": "yaml"}}, "params.response_format", "text, json_object, json_schema"),
        ({"user": None}, "params.user", "must not be null"),
        ({"metadata": {"a": 1}}, "params.metadata", "an object of strings"),
        ({"stream": True}, "params.stream", "ftvp reads whole answers"),
        ({"model": "gpt-4o"}, "params.model", "the endpoint's model field sets it"),
        ({"messages": []}, "params.messages", "the strategy builds them"),
    ],
)
def test_an_out_of_range_parameter_is_refused_naming_it(params, field, message):
    with pytest.raises(ValidationError) as caught:
        params_check(params)
    errors = caught.value.message_dict
    assert list(errors) == [field] and message in errors[field][0], errors


def test_every_bad_parameter_is_named_at_once_and_a_secret_is_never_echoed():
    with pytest.raises(ValidationError) as caught:
        params_check({"max_tokens": -1, "temperature": 1e308, "top_p": 2, "seed": "sk-secret-value", "x": 1})
    errors = caught.value.message_dict
    assert set(errors) == {"params.max_tokens", "params.temperature", "params.top_p", "params.seed"}
    assert "sk-secret-value" not in str(errors) and "got a string" in errors["params.seed"][0]


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"seed": jsonsafe.loads("1e400")}, "params.seed", "1e400 is too large for JSON and the database"),
        ({"temperature": jsonsafe.loads("-1e400")}, "params.temperature", "-1e400 is too large"),
        (
            {"temperature": math.nan},
            "params.temperature",
            "NaN is not a number JSON or the database can hold",
        ),
        ({"top_p": math.inf}, "params.top_p", "Infinity is not a number"),
        ({"extra": {"deep": [1, math.nan]}}, "params.extra.deep[1]", "NaN is not a number"),
        ({"top_k": 10**400}, "params.top_k", "a 401-digit integer is too large"),
        ({"top_k": Decimal("1E+400")}, "params.top_k", "1E+400 is too large"),
    ],
)
def test_a_number_json_or_the_database_cannot_hold_is_refused_naming_where_it_is(params, field, message):
    with pytest.raises(ValidationError) as caught:
        params_check(params)
    errors = caught.value.message_dict
    assert list(errors) == [field], errors
    assert errors[field][0].startswith(message) and errors[field][0].endswith("give a finite number")


def test_params_must_be_an_object():
    with pytest.raises(ValidationError, match="must be an object such as"):
        params_check([1, 2])


def test_unknown_parameters_are_kept_and_listed():
    params = {"temperature": 0, "top_k": 40, "min_p": 0.05, "repetition_penalty": 1.1}
    assert params_check(params) == params
    assert params_warnings(params) == [
        "unknown parameters passed as they are: min_p, repetition_penalty, top_k"
    ]
    assert params_warnings({"temperature": 0, "max_tokens": 8}) == []
    assert params_warnings({"temperature": 0, "n": 2, "top_k": 1}, "local") == [
        "parameters the local model ignores: n, top_k"
    ]


def test_a_refused_create_stores_nothing(db):
    with pytest.raises(ValidationError) as caught:
        endpoint_create(name="e", provider="openai", model="m", params={"max_tokens": -1})
    assert "params.max_tokens" in caught.value.message_dict
    assert not Endpoint.objects.exists() and not AuditEvent.objects.filter(action="endpoint.create").exists()


@pytest.mark.parametrize(
    "params",
    [{"seed": jsonsafe.loads("1e400")}, {"temperature": -1e400}, {"max_tokens": -1}, {"temperature": 1e308}],
)
def test_a_refused_update_changes_nothing_not_even_the_other_fields(db, params):
    endpoint = endpoint_create(name="e", provider="openai", model="m", params={"temperature": 0})
    with pytest.raises(ValidationError):
        endpoint_update(endpoint=endpoint, name="renamed", price_in="9", params=params)
    stored = Endpoint.objects.get(pk=endpoint.pk)
    assert (stored.name, stored.price_in, stored.params) == ("e", Decimal("0"), {"temperature": 0})
    assert not AuditEvent.objects.filter(action="endpoint.update").exists()


def test_the_stored_params_are_the_checked_ones(db):
    endpoint = endpoint_create(name="e", provider="openai", model="m", params={"max_tokens": 64.0})
    endpoint_update(endpoint=endpoint, params={"temperature": 0.5, "top_k": 5})
    assert Endpoint.objects.get(pk=endpoint.pk).params == {"temperature": 0.5, "top_k": 5}
    assert Endpoint.objects.get(name="e").params["temperature"] == 0.5


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--max-tokens", "-1"], "params.max_tokens: must be an integer of at least 1; got -1"),
        (["--temperature", "1e308"], "params.temperature: must be a number between 0 and 2"),
        (
            ["--temperature", "inf"],
            "params.temperature: Infinity is not a number JSON or the database can hold",
        ),
        (["--temperature", "nan"], "params.temperature: NaN is not a number"),
    ],
)
def test_add_endpoint_refuses_what_the_model_would(db, options, message):
    with pytest.raises(CommandError) as caught:
        call_command("add_endpoint", "e", "--provider", "openai", "--model", "m", *options)
    assert message in str(caught.value)
    assert not Endpoint.objects.exists()
