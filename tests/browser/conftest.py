"""Real-browser tests: Playwright (Python) drives Debian's chromium against Django's live server.

Chromium is the system's (`apt-get install chromium`, or FTVP_CHROMIUM): Playwright never downloads
a browser here. A missing chromium fails these tests with how to install it; they are not skipped.

Playwright's sync API runs an asyncio event loop in the test's thread from the moment it starts until
it stops, and Django's ORM refuses to run in a thread with a running loop (SynchronousOnlyOperation).
The tests read and write the database in that thread (setup, waiting for the worker), so the
`_playwright` fixture sets DJANGO_ALLOW_ASYNC_UNSAFE while Playwright runs, for these tests only: it
is package-scoped (one browser for all the tests in this folder), so it stops Playwright and restores
the variable before any other test runs. The live server answers requests in its own thread, which
has no loop.

Static files: pytest-django's live server serves them from the static finders (the app's files and
Chart.js and htmx from node_modules, as whitenoise does with WHITENOISE_USE_FINDERS); a script that
fails to load is a failed request, and fails the test.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import ROOT

ARTIFACTS = ROOT / "test-artifacts"

# Chromium must not reach the network: no sync, no component updates, no QUIC probes, no first-run.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

INSTALL_HINT = (
    "The browser tests drive Debian's chromium through Playwright. Install it with "
    "`sudo apt-get install -y chromium` (`make install` does this when run as root), or set "
    "FTVP_CHROMIUM to the path of a Chromium binary. Do not run `playwright install`: ftvp never "
    "downloads a browser."
)

# Reads a canvas's pixels: how many are painted (not transparent), in how many colours (4 bits per
# channel), and how many data points the Chart.js chart drawn on it holds.
CANVAS_STATS_JS = """
(canvas) => {
  const width = canvas.width, height = canvas.height;
  const label = canvas.id || canvas.getAttribute("aria-label") || "canvas";
  const chart = window.Chart ? window.Chart.getChart(canvas) : undefined;
  const points = chart ? chart.data.datasets.reduce((n, ds) => n + ds.data.length, 0) : 0;
  if (!width || !height) return {label, width, height, painted: 0, colours: 0, points};
  const data = canvas.getContext("2d").getImageData(0, 0, width, height).data;
  let painted = 0;
  const colours = new Set();
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 3] === 0) continue;
    painted += 1;
    colours.add(((data[i] >> 4) << 8) | ((data[i + 1] >> 4) << 4) | (data[i + 2] >> 4));
  }
  return {label, width, height, painted, colours: colours.size, points};
}
"""


def chromium_executable() -> str:
    configured = os.environ.get("FTVP_CHROMIUM", "").strip()
    if configured:
        if not (os.path.isfile(configured) and os.access(configured, os.X_OK)):
            pytest.fail(
                f"FTVP_CHROMIUM={configured} is not an executable file. {INSTALL_HINT}", pytrace=False
            )
        return configured
    found = shutil.which("chromium")
    if not found:
        pytest.fail(f"chromium is not on PATH. {INSTALL_HINT}", pytrace=False)
    return found


@pytest.fixture(scope="package")
def _playwright() -> Iterator[object]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: run `make install` (requirements-dev.txt)", pytrace=False)
    executable = chromium_executable()
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # see the module's docstring
    playwright = sync_playwright().start()
    try:
        yield playwright, executable
    finally:
        playwright.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="package")
def browser(_playwright):
    playwright, executable = _playwright
    browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@dataclass
class Tab:
    """A browser tab on the live server that records every console error (CSP violations included),
    page error, failed request and error response; `shot` screenshots a step and checks there were
    none so far."""

    page: object  # playwright.sync_api.Page
    artifacts: Path
    problems: list[str] = field(default_factory=list)
    shots: int = 0

    def shot(self, step: str) -> Path:
        self.shots += 1
        path = self.artifacts / f"{self.shots:02d}-{re.sub(r'[^a-z0-9]+', '-', step.lower()).strip('-')}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.assert_clean(step)
        return path

    def assert_clean(self, where: str = "") -> None:
        if self.problems:
            listed = "\n  ".join(self.problems)
            pytest.fail(f"the browser reported problems{f' by {where}' if where else ''}:\n  {listed}")

    def chart_stats(self) -> list[dict]:
        return [c.evaluate(CANVAS_STATS_JS) for c in self.page.locator("canvas").element_handles()]

    def assert_charts_drawn(self, *, at_least: int = 1, timeout: float = 15) -> list[dict]:
        """Every <canvas> on the page holds a Chart.js chart with data, and its pixels show it:
        at least 1% of them painted, in more than one colour."""
        ok = (
            "(c) => { const s = (" + CANVAS_STATS_JS + ")(c); "
            "return s.points > 0 && s.painted >= Math.max(500, s.width * s.height / 100) && s.colours > 1; }"
        )
        check = f"() => {{ const all = [...document.querySelectorAll('canvas')]; return all.length >= {at_least} && all.every({ok}); }}"  # noqa: E501
        try:
            self.page.wait_for_function(check, timeout=timeout * 1000, polling=200)
        except Exception as exc:
            stats = self.chart_stats()
            raise AssertionError(
                f"not every chart on {self.page.url} has drawn (at least {at_least} expected): {stats}"
            ) from exc
        return self.chart_stats()


def _loopback(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("data", "blob", "about") or parts.hostname in ("127.0.0.1", "localhost")


@pytest.fixture
def tab(browser, live_server, request) -> Iterator[Tab]:
    artifacts = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    shutil.rmtree(artifacts, ignore_errors=True)
    artifacts.mkdir(parents=True)
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    tab = Tab(page=page, artifacts=artifacts)
    problems = tab.problems

    def guard(route) -> None:
        if _loopback(route.request.url):
            route.continue_()
        else:
            problems.append(f"request off loopback (blocked): {route.request.url}")
            route.abort()

    def on_console(message) -> None:
        if message.type == "error":
            problems.append(f"console error on {page.url}: {message.text} ({message.location})")

    def on_failed(req) -> None:
        failure = req.failure or ""
        # Leaving a page cancels what it still had in flight (an htmx poll, the favicon the browser
        # fetches after the load): not a problem. A file that is missing or refused fails otherwise
        # (an error status, or net::ERR_BLOCKED_BY_CSP and the like).
        if "ERR_ABORTED" in failure and req.resource_type in ("xhr", "fetch", "other"):
            return
        problems.append(f"request failed: {req.method} {req.url}: {failure}")

    def on_response(response) -> None:
        if response.status >= 400:
            problems.append(f"HTTP {response.status} for {response.request.method} {response.url}")

    context.route("**/*", guard)
    page.on("console", on_console)
    page.on("pageerror", lambda exc: problems.append(f"uncaught script error on {page.url}: {exc}"))
    page.on("requestfailed", on_failed)
    page.on("response", on_response)
    yield tab
    context.close()
    tab.assert_clean("the end of the test")


def login(tab: Tab, *, username: str, password: str) -> None:
    """Log in through the login form."""
    page = tab.page
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/login/" not in url)
