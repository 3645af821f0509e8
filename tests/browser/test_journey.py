"""A person's way through ftvp in a real browser: log in, upload a suite, start a run with two arms
and watch it progress, then read the run page, the compare view, the decision page and the trends
page, with every chart drawn. A real worker runs the run against a loopback OpenAI-compatible server.
Screenshots: test-artifacts/<test name>/."""

from __future__ import annotations

import time

import pytest

from evaluations.models import Run, RunStatus, Strategy, SuiteVersion
from evaluations.services.endpoints import endpoint_create
from tests.browser.conftest import login
from tests.conftest import wait_for
from tests.factories import UserFactory
from tests.fakeopenai import FakeOpenAI, last_user_text

pytestmark = pytest.mark.integration

CASES = 200
QUEUES = ("billing", "outage", "account")


def _truth(i: int) -> str:
    return QUEUES[i % 3]


def _suite_csv(n: int) -> str:
    rows = ["id,input,expected"] + [f"t{i:04d},ticket {i} needs routing,{_truth(i)}" for i in range(n)]
    return "\n".join(rows) + "\n"


def _responder(body: dict) -> str:
    """model "sharp" is right unless i % 10 == 0; model "vague" is right when i % 2 == 0."""
    i = int(last_user_text(body).split()[1])
    right = i % 10 != 0 if body["model"] == "sharp" else i % 2 == 0
    return _truth(i) if right else _truth(i + 1)


@pytest.fixture
def server():
    # Each answer takes a while, so that the run lasts long enough to watch its progress bar move.
    with FakeOpenAI(responder=_responder, delay=0.25) as s:
        yield s


def _progress(page) -> float | None:
    value = page.locator("#live [role=progressbar]").get_attribute("aria-valuenow")
    return float(value) if value is not None else None


def test_an_editor_uploads_a_suite_runs_two_arms_and_reads_every_chart(worker, server, tab, tmp_path):
    UserFactory(username="erin", roles=["editor"])
    # Endpoints are an admin's to register; the editor uses them.
    sharp, vague = (
        endpoint_create(name=name, provider="openai", model=name, base_url=server.base_url,
                        price_in=price, price_out="10", max_concurrency=4, timeout_seconds=10)
        for name, price in (("sharp", "3"), ("vague", "0.5"))
    )  # fmt: skip
    plain = Strategy.objects.filter(name="plain").order_by("-version").first()
    worker.start()
    page = tab.page

    login(tab, username="erin", password="pw-for-tests-1")
    tab.shot("logged in")

    page.get_by_role("link", name="Suites", exact=True).click()
    page.get_by_role("link", name="Upload a suite").click()
    suite_file = tmp_path / "tickets.csv"
    suite_file.write_text(_suite_csv(CASES))
    page.get_by_label("Name").fill("tickets")
    page.get_by_label("Task type").select_option("classification")
    page.locator("input[type=file][name=file]").set_input_files(str(suite_file))
    tab.shot("upload form")
    page.get_by_role("button", name="Import").click()
    page.wait_for_url("**/suites/*/")
    assert f"Imported {CASES} cases" in page.locator(".messages").inner_text()
    tab.shot("suite uploaded")
    version = SuiteVersion.objects.get(suite__name="tickets")

    page.get_by_role("link", name="New run").click()
    page.get_by_label("Suite version").select_option(str(version.pk))
    for endpoint in (sharp, vague):
        page.locator(f'input[name="arms"][value="{endpoint.pk}:{plain.pk}"]').check()
    tab.shot("new run form")
    page.get_by_role("button", name="Start run").click()
    page.wait_for_url("**/runs/*/")
    run = Run.objects.get(suite_version=version)
    assert page.url.endswith(f"/runs/{run.pk}/")

    # The live panel polls every 2 s: its progress bar must be seen rising at least twice before 100.
    seen: list[float] = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        value = _progress(page)
        if value is not None and (not seen or value != seen[-1]):
            seen.append(value)
            if 0 < value < 100 and len(seen) == 2:
                tab.shot("run in progress")
        if value == 100:
            break
        page.wait_for_timeout(300)
    assert seen and seen[-1] == 100, f"the progress bar did not reach 100: {seen}\n{worker.log_text()}"
    assert seen == sorted(seen), f"the progress bar went backwards: {seen}"
    below = [v for v in seen if v < 100]
    assert len(below) >= 3, f"the progress bar rose fewer than twice before 100: {seen}"

    wait_for(
        lambda: Run.objects.filter(pk=run.pk, analysed_at__isnull=False).exists(),
        120,
        message="the run to finish and be analysed",
    )
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, worker.log_text()

    # The run page: the score chart and one confusion matrix per arm; the results table.
    page.reload()
    page.locator("#results table").first.wait_for()
    stats = tab.assert_charts_drawn(at_least=3)
    assert {s["label"] for s in stats} >= {"score-chart"}
    summary = page.locator("#live table.summary").first.inner_text()
    assert "sharp" in summary and "vague" in summary
    assert f"{2 * CASES} of {2 * CASES} results" in page.locator("#live").inner_text()
    tab.shot("run page")

    # Compare: the two arms, ticked on the run page.
    page.get_by_role("button", name="Compare selected").click()
    page.wait_for_url("**/compare/?*")
    assert page.locator("h2", has_text="Against the baseline").count() == 1
    verdicts = page.locator("table.summary .verdict").all_inner_texts()
    assert "worse" in verdicts, verdicts  # vague (half right) against sharp (90% right)
    tab.shot("compare")

    # The decision page: quality against cost.
    page.goto(f"/suites/{version.suite_id}/decision/")
    tab.assert_charts_drawn(at_least=1)
    assert page.locator("#quality-cost canvas").count() == 1
    tab.shot("decision page")

    # The trends page: the run's analysis made one point per arm.
    page.goto(f"/suites/{version.suite_id}/trends/")
    stats = tab.assert_charts_drawn(at_least=4)
    assert {"score-chart", "pass-chart", "cost-chart", "latency-chart"} <= {s["label"] for s in stats}
    latest = page.locator("#latest").inner_text()
    assert "sharp" in latest and "vague" in latest
    tab.shot("trends page")
