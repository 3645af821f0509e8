"""The fine-tuning page's backend choice (issue 21): local LoRA or the base endpoint's
OpenAI-compatible fine-tuning API, passed to the service only when it is not local."""

from __future__ import annotations

import pytest
from django.urls import reverse

from evaluations.models import FineTuneJob
from evaluations.services.finetune import finetune_create
from tests.factories import CaseFactory, EndpointFactory, SuiteVersionFactory
from tests.views.test_finetune_pages import _form


@pytest.fixture
def version(db):
    version = SuiteVersionFactory(suite__name="routing")
    for i in range(10):
        CaseFactory(version=version, key=f"x{i}", position=i, input=f"train {i}", expected="access",
                    split="train")  # fmt: skip
    return version


@pytest.fixture
def local(db):
    return EndpointFactory(name="smol", provider="local", model="smollm2-135m-instruct", base_url="")


def test_the_form_offers_the_backends_with_help(auth_client, db):
    html = auth_client.get(reverse("evaluations:finetune-list")).content.decode()
    assert 'name="backend"' in html and 'value="local"' in html and 'value="openai"' in html
    assert "OpenAI-compatible API" in html and "base URL" in html and "key variable" in html
    assert 'name="learning_rate_multiplier"' in html and 'name="suffix"' in html


def test_local_stays_the_default_and_goes_to_the_service_without_a_backend(
    auth_client, version, local, task_queue, monkeypatch
):
    seen = {}

    def spy(**kwargs):
        seen.update(kwargs)
        return finetune_create(**kwargs)

    monkeypatch.setattr("evaluations.views.finetune.finetune_create", spy)
    response = auth_client.post(reverse("evaluations:finetune-list"), _form(version, local, backend="local"))
    assert response.status_code == 302 and seen["backend"] == "local"
    assert FineTuneJob.objects.get().backend == "local"


def test_a_backend_that_does_not_fit_the_endpoint_is_named(auth_client, version, local, task_queue):
    response = auth_client.post(reverse("evaluations:finetune-list"), _form(version, local, backend="openai"))
    assert response.status_code == 400 and not FineTuneJob.objects.exists()
    assert "smol is a Local (transformers) endpoint" in response.content.decode()


def test_the_openai_backend_is_passed_through(auth_client, version, task_queue, fake_openai):
    hosted = EndpointFactory(name="gpt-mini", base_url=fake_openai.base_url)
    form = _form(version, hosted, backend="openai", learning_rate_multiplier=0.5, suffix="routing")
    response = auth_client.post(reverse("evaluations:finetune-list"), form)
    job = FineTuneJob.objects.get()
    assert response.status_code == 302 and job.backend == "openai"
    assert (
        job.hyperparameters["learning_rate_multiplier"] == 0.5 and job.hyperparameters["suffix"] == "routing"
    )
    # The local trainer's defaults left as they were (epochs 2) are not sent: the provider picks its
    # own; the ones changed on the form are (batch size 4, seed 1).
    assert job.hyperparameters.get("epochs") is None and "rank" not in job.hyperparameters
    assert job.hyperparameters["batch_size"] == 4 and job.hyperparameters["seed"] == 1
