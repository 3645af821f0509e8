"""Shadow evaluation (issue [capture]): recorded live calls are sent again to a loopback candidate in
the background and each pair compared; a candidate that differs on 30% of the answers agrees on about
70%; the sample is deterministic, each call is shadowed once, other calls are left alone."""

from __future__ import annotations

import uuid

import pytest
from django.utils import timezone

from evaluations.models import ShadowPair, TrafficCall
from evaluations.selectors.shadow import live_answer, shadow_summary
from evaluations.services.shadow import (
    ShadowError,
    sampled,
    shadow_config_create,
    shadow_sweep,
    shadows_dispatch,
)
from tests.factories import EndpointFactory, SuiteFactory, UserFactory
from tests.fakeopenai import last_user_text


def candidate_model(body: dict) -> str:
    """Answers like the live model except on questions whose number ends in 0, 1 or 2: 30% of them."""
    n = int(last_user_text(body).removeprefix("question "))
    return f"different {n}" if n % 10 < 3 else f"answer {n}"


def record(live, n: int, *, kind: str = "chat", status: int = 200, stream: bool = False) -> TrafficCall:
    response = (
        {"content": f"answer {n}"}
        if stream
        else {"choices": [{"index": 0, "message": {"role": "assistant", "content": f"answer {n}"}}]}
    )
    return TrafficCall.objects.create(
        call_id=uuid.uuid4().hex, endpoint=live, endpoint_name=live.name, kind=kind, model="live-model",
        stream=stream, request={"messages": [{"role": "user", "content": f"question {n}"}], "temperature": 0},
        response=response, status=status, prompt_tokens=12, completion_tokens=3, latency_ms=40.0,
        cost=0.0001, started_at=timezone.now(),
    )  # fmt: skip


@pytest.fixture(autouse=True)
def settled_at_once(monkeypatch):
    """Calls are claimed as soon as recorded (in production, 30 s later: see SETTLE_SECONDS)."""
    monkeypatch.setattr("evaluations.services.shadow.SETTLE_SECONDS", 0)


@pytest.fixture
def endpoints(db, fake_openai):
    fake_openai.responder = candidate_model
    live = EndpointFactory(name="live", price_in=10, price_out=30)
    candidate = EndpointFactory(name="candidate", base_url=fake_openai.base_url, price_in=1, price_out=2)
    return live, candidate


@pytest.fixture
def exact_suite(db):
    return SuiteFactory(name="support", default_assertions=[{"type": "equals"}])


def test_a_candidate_differing_on_30_percent_of_answers_agrees_on_about_70(
    endpoints, exact_suite, task_queue, fake_openai
):
    live, candidate = endpoints
    user = UserFactory()
    config = shadow_config_create(
        name="small-vs-live", live_endpoint=live, candidate=candidate, share=1.0, suite=exact_suite, user=user
    )
    record(live, 999)  # recorded before the shadow started: never shadowed
    config.watermark = TrafficCall.objects.get().pk
    config.save(update_fields=["watermark"])
    for n in range(300):
        record(live, n)
    record(live, 1000, kind="embeddings")  # not a chat call: left alone
    record(live, 1001, status=500)  # the live call failed: nothing to compare with
    assert shadows_dispatch() == 1
    task_queue.drain()  # the sweep takes 200 calls, then sends itself again for the rest

    pairs = ShadowPair.objects.filter(config=config)
    assert pairs.count() == 300 and not pairs.exclude(error="").exists()
    summary = shadow_summary(config)
    assert summary["pairs"] == 300 and summary["agreement_rate"] == pytest.approx(0.7)
    assert summary["candidate_cost_per_request"] > 0 and summary["live_cost_per_request"] == pytest.approx(
        0.0001
    )
    assert summary["candidate_latency_p50_ms"] is not None and summary["live_latency_p50_ms"] == 40.0
    assert len(summary["daily"]) == 1 and summary["daily"][0]["agreement_rate"] == pytest.approx(0.7)
    wrong = pairs.get(call__request__messages__0__content="question 12")
    assert (wrong.output, wrong.agreed, wrong.agreement) == ("different 12", False, 0.0)
    # The candidate was asked exactly the live requests, once each.
    asked = sorted(last_user_text(r) for r in fake_openai.requests)
    assert len(asked) == 300 and asked == sorted(f"question {n}" for n in range(300))
    # Once looked at, a call is not looked at again.
    assert shadows_dispatch() == 0 and shadow_sweep(config_id=config.pk) == 0


def test_the_sample_is_a_stable_share_of_the_calls(endpoints, task_queue):
    live, candidate = endpoints
    config = shadow_config_create(name="tenth", live_endpoint=live, candidate=candidate, share=0.25)
    calls = [record(live, n) for n in range(400)]
    shadows_dispatch()
    task_queue.drain()
    chosen = set(ShadowPair.objects.filter(config=config).values_list("call_id", flat=True))
    assert chosen == {c.pk for c in calls if sampled(config.pk, c.call_id, 0.25)}
    assert 0.18 <= len(chosen) / 400 <= 0.32


def test_a_stream_and_a_pairwise_judge(endpoints, task_queue, fake_openai, settings):
    live, candidate = endpoints
    settings.FTVP_JUDGE_ENDPOINT = "judge"
    EndpointFactory(name="judge", model="judge", base_url=fake_openai.base_url)
    fake_openai.responder = lambda body: "TIE" if body["model"] == "judge" else candidate_model(body)
    config = shadow_config_create(name="judged", live_endpoint=live, candidate=candidate, share=1.0,
                                  compare="pairwise")  # fmt: skip
    record(live, 5, stream=True)
    shadows_dispatch()
    task_queue.drain()
    pair = ShadowPair.objects.get(config=config)
    assert pair.agreement == 0.5 and pair.agreed is True and pair.details["outcome"] == "tie"
    assert pair.details["shown_first"] in ("candidate", "live")


def test_what_a_shadow_cannot_be(endpoints):
    live, candidate = endpoints
    with pytest.raises(ShadowError, match="it is the live endpoint"):
        shadow_config_create(name="x", live_endpoint=live, candidate=live)
    with pytest.raises(ShadowError, match=r"share: 0 is outside \(0, 1\]"):
        shadow_config_create(name="x", live_endpoint=live, candidate=candidate, share=0)
    with pytest.raises(ShadowError, match="pairwise needs a judge endpoint"):
        shadow_config_create(name="x", live_endpoint=live, candidate=candidate, compare="pairwise")
    shadow_config_create(name="x", live_endpoint=live, candidate=candidate)
    with pytest.raises(ShadowError, match="a shadow named 'x' exists"):
        shadow_config_create(name="x", live_endpoint=live, candidate=candidate)


def test_the_live_answer_of_a_call() -> None:
    assert live_answer({"choices": [{"message": {"content": "hi"}}]}) == "hi"
    assert live_answer({"content": "streamed"}) == "streamed"
    assert live_answer({"data": []}) is None and live_answer(None) is None


def test_a_call_recorded_a_moment_ago_waits_and_a_failing_candidate_keeps_the_reason(
    endpoints, task_queue, monkeypatch
):
    live, candidate = endpoints
    monkeypatch.setattr("evaluations.services.shadow.SETTLE_SECONDS", 30)
    config = shadow_config_create(name="later", live_endpoint=live, candidate=candidate, share=1.0)
    record(live, 1)
    assert shadows_dispatch() == 0 and shadow_sweep(config_id=config.pk) == 0  # not settled yet
    monkeypatch.setattr("evaluations.services.shadow.SETTLE_SECONDS", 0)

    def broken(endpoint):
        raise RuntimeError("OPENAI_KEY is not set")

    monkeypatch.setattr("evaluations.services.shadow.endpoint_provider", broken)
    assert shadow_sweep(config_id=config.pk) == 1
    pair = ShadowPair.objects.get()
    assert pair.error == "the candidate cannot be called: OPENAI_KEY is not set" and pair.agreement is None
