from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from evaluations.models import Endpoint
from evaluations.services.endpoints import endpoint_create


@pytest.mark.parametrize(
    "pasted", ["sk-proj-abc123", "hf_AbCdEfGhIjKlMnOpQrStUvWxYz", "gsk_0123456789abcdef", "x" * 80]
)
def test_a_pasted_key_is_refused_and_never_stored(db, pasted):
    with pytest.raises(ValidationError) as err:
        endpoint_create(name="e", provider="openai", model="m", api_key_env=pasted)
    assert "NAME of an environment variable" in str(err.value)
    assert pasted not in str(err.value)
    assert not Endpoint.objects.exists()


def test_an_environment_variable_name_is_accepted(db):
    endpoint = endpoint_create(name="e", provider="openai", model="m", api_key_env="OPENAI_API_KEY")
    assert endpoint.api_key_env == "OPENAI_API_KEY"


def test_a_base_endpoint_is_only_for_fine_tuned_ones(db):
    base = endpoint_create(name="base", provider="local", model="smollm2-135m-instruct")
    with pytest.raises(ValidationError, match="only a fine-tuned endpoint"):
        endpoint_create(name="x", provider="local", model="m", base_endpoint=base)
