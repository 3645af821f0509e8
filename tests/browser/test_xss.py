"""Hostile text in a real browser: a run whose suite name, case ids, inputs, expected outputs, model
outputs, endpoint and strategy names, review comments, finding, sign-off note... hold HTML/JS
(tests/hostile.py). Every page that shows them is loaded with a trap for any script they could run,
and must show the payloads as text. Screenshots: test-artifacts/<test name>/."""

from __future__ import annotations

import pytest

from evaluations.models import Finding
from tests.browser.conftest import Tab, login
from tests.factories import UserFactory
from tests.hostile import seed_hostile_run

pytestmark = pytest.mark.integration

# Each payload, if it ran, writes window.__xss and calls alert(): the trap below records both.
PAYLOADS = (
    "<script>window.__xss='script';alert('script')</script>",
    "<img src=x onerror=\"window.__xss='img';alert('img')\">",
    "\"><svg onload=window.__xss='svg';alert('svg')>",
    "</script><script>window.__xss='close';alert('close')</script>",
    "';window.__xss='quote';alert('quote');//",
)

# Runs before any of the page's scripts: records a write to window.__xss and any alert/confirm/prompt.
TRAP_JS = """
(() => {
  const hits = [];
  Object.defineProperty(window, "__xssHits", { value: hits });
  Object.defineProperty(window, "__xss", {
    configurable: false,
    get() { return undefined; },
    set(value) { hits.push("window.__xss = " + value); },
  });
  for (const name of ["alert", "confirm", "prompt"]) {
    window[name] = (...args) => { hits.push(name + "(" + args.join(", ") + ")"); };
  }
})();
"""


def _visit(tab: Tab, dialogs: list[str], url: str, step: str, *, shows: tuple[str, ...]) -> None:
    page = tab.page
    page.goto(url)
    page.wait_for_load_state("networkidle")  # htmx fragments loaded too
    hits = page.evaluate("window.__xssHits")
    assert hits == [] and dialogs == [], f"a payload ran on {url}: {hits} {dialogs}"
    text = page.locator("body").inner_text()
    missing = [p for p in shows if p not in text]
    assert not missing, f"{url} does not show these as text: {missing}"
    # Not one payload made an element: the page holds no <script> without a src, no onerror/onload.
    injected = page.evaluate(
        '[...document.querySelectorAll(\'script:not([src]):not([type="application/json"]), '
        '[onerror], [onload], svg[onload], img[src="x"]\')].map(e => e.outerHTML)'
    )
    assert injected == [], f"{url} holds elements made from a payload: {injected}"
    tab.shot(step)


def test_hostile_text_shows_as_text_and_never_runs_on_any_page(transactional_db, tab):
    admin = UserFactory(username="ada", roles=["admin"])
    run, payloads = seed_hostile_run(payloads=PAYLOADS, user=admin)
    suite = run.suite_version.suite
    arms = list(run.arms.order_by("position").values_list("pk", flat=True))
    finding = Finding.objects.filter(run=run).first()
    review_of = run.arms.get(position=1).results.order_by("case__position").first()

    dialogs: list[str] = []
    page = tab.page
    page.context.add_init_script(TRAP_JS)
    page.on("dialog", lambda d: (dialogs.append(f"{d.type}: {d.message}"), d.dismiss()))
    login(tab, username="ada", password="pw-for-tests-1")

    suite_name, base_name, strategy_name = payloads[0], payloads[1], payloads[2]
    compare = "&".join(f"arm={pk}" for pk in arms)
    pages = [
        ("/", "home", (suite_name,)),
        ("/suites/", "suite list", (suite_name,)),
        (f"/suites/{suite.pk}/", "suite detail", (suite_name,)),
        ("/runs/", "run list", (suite_name,)),
        (f"/runs/{run.pk}/", "run page", (suite_name, base_name, strategy_name)),
        (f"/runs/{run.pk}/results/?q=output", "results table", (base_name, strategy_name)),
        (f"/compare/?{compare}", "compare", (base_name, strategy_name)),
        (f"/suites/{suite.pk}/decision/", "decision", (suite_name, base_name)),
        (f"/suites/{suite.pk}/trends/", "trends", (suite_name, base_name, strategy_name)),
        (f"/runs/{run.pk}/review/{review_of.pk}/", "review", (base_name, strategy_name)),
        (f"/findings/{finding.pk}/", "finding", (suite_name,)),
        ("/signoffs/", "sign-offs", (suite_name,)),
        ("/endpoints/", "endpoints", (base_name,)),
        ("/finetunes/", "fine-tuning", (suite_name,)),
        ("/alerts/", "alerts", ()),
        ("/audit/", "audit log", ()),
    ]
    for url, step, shows in pages:
        _visit(tab, dialogs, url, step, shows=shows)

    # The charts drew the hostile labels as pixels, and their scripts did not choke on them.
    page.goto(f"/suites/{suite.pk}/trends/")
    tab.assert_charts_drawn(at_least=4)
    page.goto(f"/runs/{run.pk}/")
    tab.assert_charts_drawn(at_least=1)
    assert page.evaluate("window.__xssHits") == [] and dialogs == []
