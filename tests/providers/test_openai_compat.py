"""OpenAICompatProvider against a real loopback HTTP server (no HTTP mocks)."""

from __future__ import annotations

import email.utils
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from evaluations.providers.base import GenerationParams, ProviderError
from evaluations.providers.limits import LocalLimiter
from evaluations.providers.openai_compat import OpenAICompatProvider, retry_after_seconds
from tests.fakeopenai import FakeOpenAI, answers_responder


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def make_provider(base_url: str, **overrides) -> OpenAICompatProvider:
    options = {
        "model": "fake-model",
        "base_url": base_url,
        "api_key": None,
        "timeout": 2.0,
        "max_retries": 3,
        "max_concurrency": 4,
        "backoff_base": 0.001,
        "backoff_max": 0.05,
    }
    options.update(overrides)
    return OpenAICompatProvider(**options)


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


PARAMS = GenerationParams()


def test_it_returns_answers_and_usage_in_order(server: FakeOpenAI) -> None:
    server.responder = answers_responder({"capital of France": "Paris", "2 + 2": "four, obviously"})
    prompts = [
        user("What is the capital of France?"),
        user("What is 2 + 2?"),
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "echo me please"}],
    ]

    completions = make_provider(server.base_url).complete_many(prompts, PARAMS)

    assert [c.text for c in completions] == ["Paris", "four, obviously", "echo me please"]
    assert [c.prompt_tokens for c in completions] == [6, 5, 5]
    assert [c.completion_tokens for c in completions] == [1, 2, 3]
    for completion in completions:
        assert completion.ok
        assert completion.attempts == 1
        assert completion.cost is None
        assert completion.latency_ms is not None and completion.latency_ms > 0


def test_it_keeps_order_with_many_concurrent_prompts(server: FakeOpenAI) -> None:
    prompts = [user(f"prompt number {i}") for i in range(20)]

    completions = make_provider(server.base_url, max_concurrency=5).complete_many(prompts, PARAMS)

    assert [c.text for c in completions] == [f"prompt number {i}" for i in range(20)]


def test_it_returns_nothing_for_no_prompts(server: FakeOpenAI) -> None:
    assert make_provider(server.base_url).complete_many([], PARAMS) == []
    assert server.requests == []


def test_it_sends_generation_params_and_extra_body(server: FakeOpenAI) -> None:
    params = GenerationParams.from_dict(
        {"temperature": 0.7, "max_tokens": 32, "top_p": 0.9, "seed": 7, "stop": ["\n"], "top_k": 40}
    )

    make_provider(server.base_url, model="my-model").complete_many([user("hi")], params)

    (body,) = server.requests
    assert body["model"] == "my-model"
    assert body["messages"] == user("hi")
    assert body["temperature"] == 0.7
    assert body["max_tokens"] == 32
    assert body["top_p"] == 0.9
    assert body["seed"] == 7
    assert body["stop"] == ["\n"]
    assert body["top_k"] == 40


def test_it_omits_unset_optional_params(server: FakeOpenAI) -> None:
    make_provider(server.base_url).complete_many([user("hi")], PARAMS)

    (body,) = server.requests
    assert "top_p" not in body
    assert "seed" not in body
    assert body["temperature"] == 0.0
    assert body["max_tokens"] == 256


def test_it_sends_a_placeholder_key_when_none_is_configured(server: FakeOpenAI) -> None:
    make_provider(server.base_url, api_key="").complete_many([user("hi")], PARAMS)

    assert server.request_headers[0]["authorization"] == "Bearer not-needed"


def test_it_sends_the_configured_key_and_never_shows_it() -> None:
    with FakeOpenAI(api_key="sk-secret-123") as server:
        good = make_provider(server.base_url, api_key="sk-secret-123")
        server.fail_next(403, 1, body={"error": {"message": "key sk-secret-123 is not allowed here"}})

        (failed,) = good.complete_many([user("hi")], PARAMS)
        (succeeded,) = good.complete_many([user("hi")], PARAMS)

    assert succeeded.ok and succeeded.text == "hi"
    assert failed.error == "HTTP 403: key *** is not allowed here"
    assert "sk-secret" not in repr(good)


def test_it_retries_429_honouring_retry_after(server: FakeOpenAI) -> None:
    server.fail_next(429, 2, headers={"retry-after": "0.15"})
    provider = make_provider(server.base_url, backoff_max=5.0)

    started = time.monotonic()
    (completion,) = provider.complete_many([user("hello")], PARAMS)
    elapsed = time.monotonic() - started

    assert completion.ok and completion.text == "hello"
    assert completion.attempts == 3
    assert len(server.requests) == 3
    assert elapsed >= 0.3  # two waits of at least the 0.15 s the server asked for


def test_it_honours_retry_after_ms(server: FakeOpenAI) -> None:
    server.fail_next(429, 1, headers={"retry-after-ms": "150", "retry-after": "0"})

    started = time.monotonic()
    (completion,) = make_provider(server.base_url, backoff_max=5.0).complete_many([user("x")], PARAMS)

    assert completion.ok and completion.attempts == 2
    assert time.monotonic() - started >= 0.15


def test_it_caps_retry_after_at_backoff_max(server: FakeOpenAI) -> None:
    server.fail_next(429, 1, headers={"retry-after": "30"})

    started = time.monotonic()
    (completion,) = make_provider(server.base_url, backoff_max=0.05).complete_many([user("x")], PARAMS)

    assert completion.ok and completion.attempts == 2
    assert time.monotonic() - started < 2.0


def test_it_retries_500_then_succeeds(server: FakeOpenAI) -> None:
    server.fail_next(500, 2)

    (completion,) = make_provider(server.base_url).complete_many([user("again")], PARAMS)

    assert completion.ok and completion.text == "again"
    assert completion.attempts == 3
    assert len(server.requests) == 3


def test_it_gives_up_on_persistent_5xx_after_max_retries(server: FakeOpenAI) -> None:
    server.fail_next(503, 10, body={"error": {"message": "overloaded"}})

    (completion,) = make_provider(server.base_url, max_retries=2).complete_many([user("x")], PARAMS)

    assert not completion.ok
    assert completion.error == "HTTP 503: overloaded (after 3 attempts)"
    assert completion.attempts == 3
    assert len(server.requests) == 3


def test_it_reports_401_without_retrying(server: FakeOpenAI) -> None:
    server.fail_next(401, 1, body={"error": {"message": "invalid api key", "type": "authentication_error"}})

    (completion,) = make_provider(server.base_url).complete_many([user("x")], PARAMS)

    assert completion.error == "HTTP 401: invalid api key"
    assert completion.attempts == 1
    assert completion.text == ""
    assert len(server.requests) == 1


@pytest.mark.parametrize("status", [400, 403, 404, 422])
def test_it_does_not_retry_permanent_errors(server: FakeOpenAI, status: int) -> None:
    server.fail_next(status, 1)

    (completion,) = make_provider(server.base_url).complete_many([user("x")], PARAMS)

    assert completion.error.startswith(f"HTTP {status}: ")
    assert completion.attempts == 1
    assert len(server.requests) == 1


def test_one_failing_prompt_does_not_sink_the_batch(server: FakeOpenAI) -> None:
    server.fail_next(400, 1, body={"error": {"message": "bad\nrequest"}})
    prompts = [user("first"), user("second"), user("third")]

    completions = make_provider(server.base_url, max_concurrency=1).complete_many(prompts, PARAMS)

    assert completions[0].error == "HTTP 400: bad request"
    assert [c.text for c in completions[1:]] == ["second", "third"]
    assert all(c.ok for c in completions[1:])


def test_it_retries_timeouts_then_reports_them(server: FakeOpenAI) -> None:
    server.delay = 0.4
    provider = make_provider(server.base_url, timeout=0.1, max_retries=3)

    started = time.monotonic()
    (completion,) = provider.complete_many([user("slow")], PARAMS)

    assert completion.error == "timed out after 4 attempts"
    assert completion.attempts == 4
    assert len(server.requests) == 4
    assert time.monotonic() - started < 2.0


def test_it_retries_a_timeout_then_succeeds(server: FakeOpenAI) -> None:
    calls = []

    def slow_first(body: dict) -> str:
        calls.append(1)
        if len(calls) == 1:
            time.sleep(0.5)
        return "late but fine"

    server.responder = slow_first

    (completion,) = make_provider(server.base_url, timeout=0.15).complete_many([user("x")], PARAMS)

    assert completion.ok and completion.text == "late but fine"
    assert completion.attempts == 2
    assert completion.latency_ms is not None and completion.latency_ms < 150


def test_it_reports_connection_errors_without_raising() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the call: nothing listens there

    provider = make_provider(f"http://127.0.0.1:{port}/v1", max_retries=1)
    (completion,) = provider.complete_many([user("x")], PARAMS)

    assert completion.error.startswith("connection error")
    assert completion.error.endswith("(after 2 attempts)")
    assert completion.attempts == 2


def test_it_turns_null_content_into_empty_text(server: FakeOpenAI) -> None:
    server.responder = lambda body: None

    (completion,) = make_provider(server.base_url).complete_many([user("x")], PARAMS)

    assert completion.ok
    assert completion.text == ""
    assert completion.completion_tokens == 0


def test_it_bounds_concurrency_at_the_server(server: FakeOpenAI) -> None:
    server.delay = 0.05
    prompts = [user(f"p{i}") for i in range(12)]

    completions = make_provider(server.base_url, max_concurrency=3).complete_many(prompts, PARAMS)

    assert all(c.ok for c in completions)
    assert server.max_in_flight <= 3
    assert server.max_in_flight > 1


def test_a_shared_limiter_bounds_two_providers_together(server: FakeOpenAI) -> None:
    server.delay = 0.05
    limiter = LocalLimiter()
    providers = [
        make_provider(server.base_url, max_concurrency=2, limiter=limiter, limiter_key="endpoint-1")
        for _ in range(2)
    ]
    results: list[list] = []

    def run(provider: OpenAICompatProvider) -> None:
        results.append(provider.complete_many([user(f"p{i}") for i in range(5)], PARAMS))

    threads = [threading.Thread(target=run, args=(p,)) for p in providers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert len(results) == 2
    assert all(c.ok for batch in results for c in batch)
    assert server.max_in_flight == 2  # two providers x 2 workers, but only 2 slots for the endpoint


def test_it_rejects_bad_configuration() -> None:
    with pytest.raises(ProviderError):
        make_provider("http://127.0.0.1:1/v1", model="")
    with pytest.raises(ProviderError):
        make_provider("http://127.0.0.1:1/v1", max_concurrency=0)


def test_retry_after_accepts_seconds_milliseconds_and_http_dates() -> None:
    now = time.time()
    in_three_seconds = email.utils.formatdate(now + 3, usegmt=True)

    assert retry_after_seconds({"retry-after": "1.5"}) == 1.5
    assert retry_after_seconds({"retry-after-ms": "250"}) == 0.25
    assert 1.0 <= retry_after_seconds({"retry-after": in_three_seconds}, now=now) <= 3.0
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None


def test_the_fake_server_runs_standalone_with_an_answers_file(tmp_path) -> None:
    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps({"Translate 'chat'": "cat", "capital": "Paris"}))
    script = Path(__file__).resolve().parents[1] / "fakeopenai.py"
    process = subprocess.Popen(
        [sys.executable, str(script), "--port", "0", "--answers", str(answers)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:")
        base_url = line.removeprefix("listening on ")
        prompts = [user("Translate 'chat'"), user("What is the capital of Italy?"), user("other")]

        completions = make_provider(base_url).complete_many(prompts, PARAMS)

        assert [c.text for c in completions] == ["cat", "Paris", "other"]
    finally:
        process.terminate()
        assert process.wait(timeout=5) == 0


def test_it_reports_a_malformed_response_without_raising(server: FakeOpenAI) -> None:
    server.fail_next(200, 1, body="this is not json")

    completions = make_provider(server.base_url, max_concurrency=1).complete_many(
        [user("x"), user("y")], PARAMS
    )

    assert completions[0].error.startswith("invalid response: ")
    assert completions[0].attempts == 1
    assert completions[1].ok and completions[1].text == "y"


def test_it_reports_a_prompt_that_never_got_a_concurrency_slot(server: FakeOpenAI) -> None:
    limiter = LocalLimiter()
    provider = make_provider(
        server.base_url, max_concurrency=1, timeout=0.05, max_retries=1, limiter=limiter, limiter_key="ep"
    )

    with limiter.slot("ep", 1, timeout=1):  # another worker holds the endpoint's only slot
        (completion,) = provider.complete_many([user("x")], PARAMS)

    assert completion.error.startswith("no concurrency slot")
    assert completion.attempts == 2
    assert server.requests == []


def test_answers_stream_as_their_calls_end_and_a_stop_drops_the_calls_not_started(server: FakeOpenAI) -> None:
    def answer(body: dict) -> str:
        text = body["messages"][-1]["content"]
        if text == "slow":
            time.sleep(0.3)
        return text

    server.responder = answer
    prompts = [user("slow"), user("a"), user("b")]

    got = list(make_provider(server.base_url, max_concurrency=2).complete_iter(prompts, PARAMS))

    assert [(i, c.text) for i, c in got] == [(1, "a"), (2, "b"), (0, "slow")]  # as they ended

    server.reset()
    server.delay = 0.05
    stop = threading.Event()
    stream = make_provider(server.base_url, max_concurrency=2).complete_iter(
        [user(f"p{i}") for i in range(20)], PARAMS, stop=stop
    )
    first = next(stream)
    stop.set()  # a cancelled run: calls not started are dropped, calls in flight still answer
    rest = list(stream)

    assert first[1].ok and all(c.ok for _, c in rest)
    assert len(server.requests) == 1 + len(rest) < 6


def test_a_redirect_is_reported_not_followed(server: FakeOpenAI) -> None:
    server.fail_next(308, 1, headers={"Location": "https://elsewhere.example/v1/chat/completions"})

    (completion,) = make_provider(server.base_url).complete_many([user("x")], PARAMS)

    assert completion.error == (
        "HTTP 308: the endpoint redirects to https://elsewhere.example/v1/chat/completions; "
        "set its base URL to the final address"
    )
    assert completion.attempts == 1


def test_an_empty_answer_body_is_an_invalid_response(server: FakeOpenAI) -> None:
    server.fail_next(200, 1, body=b"")

    (completion,) = make_provider(server.base_url).complete_many([user("x")], PARAMS)

    assert completion.error == "invalid response: HTTP 200 with an empty body"


def test_a_key_read_with_its_newline_works_and_a_key_with_spaces_is_refused(monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_ORG_ID", "org-42")
    with FakeOpenAI(api_key="sk-secret-123") as server:
        (completion,) = make_provider(server.base_url, api_key="sk-secret-123\n").complete_many(
            [user("hi")], PARAMS
        )
        assert completion.ok
        assert server.request_headers[0]["openai-organization"] == "org-42"
    with pytest.raises(ProviderError) as caught:
        make_provider("http://127.0.0.1:1/v1", api_key="sk-secret 123")
    assert "secret" not in str(caught.value)


def test_a_base_url_with_a_query_is_refused() -> None:
    with pytest.raises(ProviderError, match="query"):
        make_provider("https://example.com/v1?api-version=2024")


def test_a_stop_ends_the_retries_of_calls_in_flight(server: FakeOpenAI) -> None:
    server.fail_next(503, 100)
    provider = make_provider(server.base_url, max_retries=50, backoff_base=0.05, backoff_max=0.05)
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()

    started = time.monotonic()
    completions = [c for _, c in provider.complete_iter([user("x")], PARAMS, stop=stop)]

    assert time.monotonic() - started < 2.0  # not 50 retries
    assert completions[0].error.startswith("HTTP 503")
    assert completions[0].attempts < 50


def test_an_endpoints_pool_serves_the_next_batch_then_ends_once_idle(server: FakeOpenAI, monkeypatch) -> None:
    from evaluations.providers import openai_compat

    def pool_threads() -> int:
        return sum(t.name.startswith("ftvp-llm") for t in threading.enumerate())

    before = pool_threads()
    provider = make_provider(server.base_url, max_concurrency=6)
    provider.complete_many([user(f"p{i}") for i in range(12)], PARAMS)
    kept = openai_compat._pools[provider.limiter_key]
    provider.complete_many([user(f"q{i}") for i in range(12)], PARAMS)
    assert openai_compat._pools[provider.limiter_key] is kept  # the next batch found its threads
    assert pool_threads() - before <= 6

    monkeypatch.setattr(openai_compat, "POOL_IDLE_SECONDS", 0.0)  # as if idle for a while
    make_provider(server.base_url, model="other", max_concurrency=1).complete_many([user("x")], PARAMS)

    assert provider.limiter_key not in openai_compat._pools
    deadline = time.monotonic() + 5
    while pool_threads() > before + 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pool_threads() <= before + 1  # the other endpoint's one thread, until it idles too
