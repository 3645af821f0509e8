"""The Content Security Policy: on every response, and nothing inline that it would block."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.urls import reverse

from evaluations.middleware import CONTENT_SECURITY_POLICY
from tests.factories import UserFactory
from tests.views.test_role_matrix import ROUTES, _kwargs, _request, project_routes
from tests.views.test_role_matrix import world as matrix_world  # noqa: F401 (the fixture `world`)

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "evaluations" / "templates"
COMMENTS = re.compile(r"\{#.*?#\}|\{% comment %\}.*?\{% endcomment %\}", re.DOTALL)

REQUIRED = [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
    "form-action 'self'",
]


class InlineFinder(HTMLParser):
    """What the policy would block in an HTML page: inline scripts (a JSON data block is not one),
    event-handler attributes, style attributes and <style> elements, javascript: URLs."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        json_data = (attributes.get("type") or "").lower() == "application/json"
        if tag == "script" and not attributes.get("src") and not json_data:
            self.problems.append(f"inline <script> at line {self.getpos()[0]}")
        if tag == "style":
            self.problems.append(f"<style> element at line {self.getpos()[0]}")
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}=...> at line {self.getpos()[0]}")
            if name == "style":
                self.problems.append(f"<{tag} style=...> at line {self.getpos()[0]}")
            if name in ("href", "src", "action") and (value or "").strip().lower().startswith("javascript:"):
                self.problems.append(f"<{tag} {name}=javascript:...> at line {self.getpos()[0]}")


def inline_problems(html: str) -> list[str]:
    finder = InlineFinder()
    finder.feed(html)
    finder.close()
    return finder.problems


def test_the_policy_holds_the_required_directives():
    for directive in REQUIRED:
        assert directive in CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY and "unsafe-eval" not in CONTENT_SECURITY_POLICY


def test_the_finder_spots_what_the_policy_blocks():
    """Not vacuous: each kind of inline content is found; a JSON block and a script file are not."""
    html = (
        '<script>alert(1)</script><script type="application/json" id="d">{}</script>'
        '<script src="/static/x.js"></script><a href="#" onclick="x()">a</a><div style="width: 3%"></div>'
        '<style>p{}</style><a href="javascript:alert(1)">b</a>'
    )
    problems = inline_problems(html)
    assert len(problems) == 5, problems


def test_no_template_holds_inline_script_style_or_event_handlers():
    scanned, problems = 0, []
    for path in sorted(TEMPLATES.rglob("*.html")):
        text = COMMENTS.sub("", path.read_text())  # a comment may name what it avoids
        scanned += 1
        # Template tags can hide attributes from the HTML parser: look at the raw text too.
        for pattern in (r"\son[a-z]+\s*=", r"\sstyle\s*=", r"<style[\s>]"):
            for match in re.finditer(pattern, text, re.IGNORECASE):
                line = text.count("\n", 0, match.start()) + 1
                problems.append(f"{path.relative_to(ROOT)}:{line}: {match.group(0).strip()}")
        for problem in inline_problems(text):
            problems.append(f"{path.relative_to(ROOT)}: {problem}")
    assert scanned > 30
    assert not problems, "\n".join(problems)


def test_htmx_is_told_not_to_inject_its_indicator_styles():
    base = (TEMPLATES / "evaluations" / "base.html").read_text()
    assert '<meta name="htmx-config"' in base and '"includeIndicatorStyles": false' in base


@pytest.mark.django_db
def test_every_get_route_answers_with_the_policy_and_nothing_inline(client, matrix_world):  # noqa: F811
    admin = UserFactory(username="csp-admin", roles=["admin"], is_staff=True, is_superuser=True)
    client.force_login(admin)
    world = matrix_world
    world["token"] = world["member"]
    problems, pages = [], 0
    for name, _, converters, _ in project_routes():
        if "GET" not in ROUTES.get(name, {}):
            continue
        url = reverse(name, kwargs=_kwargs(name, converters, world))
        response = _request(client, "GET", url)
        if response.get("Content-Security-Policy") != CONTENT_SECURITY_POLICY:
            problems.append(f"GET {url}: no Content-Security-Policy")
        if "text/html" in response.get("Content-Type", "") and not getattr(response, "streaming", False):
            pages += 1
            problems += [f"GET {url}: {p}" for p in inline_problems(response.content.decode())]
    assert pages > 20
    assert not problems, "\n".join(problems)


@pytest.mark.django_db
def test_the_admin_docs_error_pages_and_static_files_carry_the_policy(client, matrix_world):  # noqa: F811
    world = matrix_world
    anonymous = [
        client.get("/login/"),
        client.get("/admin/login/"),
        client.get("/static/evaluations/app.css"),
    ]
    anonymous.append(client.get("/no-such-page/"))
    assert anonymous[-1].status_code == 404
    client.force_login(UserFactory(username="csp-staff", roles=["admin"], is_staff=True, is_superuser=True))
    pages = [
        client.get("/admin/"),
        client.get("/admin/evaluations/endpoint/"),
        client.get(f"/admin/evaluations/endpoint/{world['endpoint'].pk}/change/"),
        client.get("/admin/auth/user/add/"),
        client.get("/api/docs/"),
        client.get("/no-such-page/"),
        client.get("/api/v1/no-such-thing/"),
    ]
    client.force_login(UserFactory(username="csp-viewer", roles=["viewer"]))
    forbidden = client.get(reverse("evaluations:run-new"))
    assert forbidden.status_code == 403
    pages.append(forbidden)
    for response in anonymous + pages:
        assert response["Content-Security-Policy"] == CONTENT_SECURITY_POLICY, response
        if "text/html" in response["Content-Type"]:
            html = response.content.decode()
            assert not inline_problems(html), (response.request["PATH_INFO"], inline_problems(html))
    docs = pages[4].content.decode()
    assert "?script" in docs or "script=" in docs  # Swagger UI's start-up script is a URL, not inline
    assert "evaluations/swagger" in docs  # and its page styles a static file


def test_progress_bars_take_their_width_from_a_data_attribute():
    for name in ("_run_live.html", "_run_review.html"):
        text = (TEMPLATES / "evaluations" / name).read_text()
        assert 'class="progress"' in text and "data-width=" in text
    script = (ROOT / "evaluations" / "static" / "evaluations" / "app.js").read_text()
    assert "data-width" in script and "htmx:load" in script and "style.width" in script
