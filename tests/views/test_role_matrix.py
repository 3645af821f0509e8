"""Every URL of the project, for every role and for an anonymous user: allowed, 403, or the login.

`ROUTES` is the expectation table: route name -> {HTTP method: the permission it needs}. The walk
enumerates the project's URL resolver; a route the table does not list fails the test by name, so a
new page or API route cannot slip in without someone saying who may use it. Each request runs in a
savepoint rolled back afterwards, so a delete or a cancel does not change what the next one sees.

Expected answers:
- anonymous: the login page (`/login/?next=...`) for pages, 401 for the API, PUBLIC routes open;
- a logged-in user without a role: 403 everywhere but PUBLIC and LOGIN routes;
- a role: allowed exactly when its group holds the permission the table names, else 403.
"Allowed" means not 401, not 403, not sent to the login page; a GET must also answer 200 (or a
redirect elsewhere), which proves the route found the real rows it was given.
"""

from __future__ import annotations

import copy
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.db import transaction
from django.shortcuts import resolve_url
from django.templatetags.static import static
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from evaluations import roles
from evaluations.access import is_api_path
from evaluations.models import (
    AlertChannel,
    AlertDelivery,
    Finding,
    FineTuneJob,
    Result,
    Schedule,
    ShadowConfig,
    SignOff,
    SyntheticGeneration,
    TrafficCall,
)
from evaluations.services.capture_tokens import capture_token_create
from evaluations.services.synthetic import synthesize_strategy
from evaluations.services.tokens import api_token_create
from tests.factories import EndpointFactory, UserFactory
from tests.runs import ArmSpec, finished_run, suite_version

pytestmark = pytest.mark.django_db

PUBLIC = "public"  # anyone, logged in or not
LOGIN = "login"  # any logged-in user, whatever their roles (their own API tokens, logging out)

R, U, ES, EE = roles.READ, roles.UPLOAD, roles.EDIT_SUITE, roles.EDIT_ENDPOINT

# route name -> {method: permission needed}, and the object each route's `pk` names.
ROUTES: dict[str, dict[str, str]] = {
    # --- authentication and the API's schema and docs
    "login": {"GET": PUBLIC, "POST": PUBLIC},
    "logout": {"POST": LOGIN},
    "schema": {"GET": R},
    "api-docs": {"GET": R},
    # --- pages
    "evaluations:home": {"GET": R},
    "evaluations:suite-list": {"GET": R},
    "evaluations:suite-upload": {"GET": U, "POST": U},
    "evaluations:suite-detail": {"GET": R},
    "evaluations:suite-settings": {"POST": ES},
    "evaluations:suite-knowledge": {"POST": U},
    "evaluations:suite-decision": {"GET": R},
    "evaluations:suite-decision-profile": {"POST": ES},
    "evaluations:suite-decision-endpoint": {"POST": EE},
    "evaluations:breakeven": {"GET": R},
    "evaluations:suite-finetune-export": {"GET": R},
    "evaluations:suite-trends": {"GET": R},
    "evaluations:finetune-list": {"GET": R, "POST": roles.FINETUNE},
    "evaluations:finetune-detail": {"GET": R},
    "evaluations:finetune-live": {"GET": R},
    "evaluations:finetune-cancel": {"POST": roles.FINETUNE},
    "evaluations:finetune-training-file": {"GET": R},
    "evaluations:shadow-list": {"GET": R, "POST": roles.RUN},
    "evaluations:shadow-detail": {"GET": R},
    "evaluations:shadow-enable": {"POST": roles.RUN},
    "evaluations:endpoint-list": {"GET": R, "POST": roles.ADD_ENDPOINT},  # and ENDPOINT_CONNECTION
    "evaluations:strategy-list": {"GET": R},
    "evaluations:strategy-detail": {"GET": R},
    "evaluations:run-list": {"GET": R},
    "evaluations:run-new": {"GET": roles.RUN, "POST": roles.RUN},
    "evaluations:run-detail": {"GET": R},
    "evaluations:run-live": {"GET": R},
    "evaluations:run-results": {"GET": R},
    "evaluations:run-cancel": {"POST": roles.RUN},
    "evaluations:run-resume": {"POST": roles.RUN},
    "evaluations:run-rescore": {"POST": roles.RUN},
    "evaluations:run-export-csv": {"GET": R},
    "evaluations:run-export-jsonl": {"GET": R},
    "evaluations:run-export-finetune": {"GET": R},
    "evaluations:compare": {"GET": R},
    "evaluations:run-set-baseline": {"POST": roles.SET_BASELINE},
    "evaluations:finding-list": {"GET": R},
    "evaluations:finding-detail": {"GET": R, "POST": roles.ACK_FINDING},
    "evaluations:alert-list": {"GET": R},
    "evaluations:alert-channel-new": {"GET": roles.ALERTS, "POST": roles.ALERTS},
    "evaluations:alert-channel-edit": {"GET": roles.ALERTS, "POST": roles.ALERTS},
    "evaluations:alert-channel-delete": {"GET": roles.ALERTS, "POST": roles.ALERTS},
    "evaluations:alert-channel-test": {"POST": roles.ALERTS},
    "evaluations:alert-retry": {"POST": roles.ALERTS},
    "evaluations:team": {"GET": roles.MANAGE_USERS, "POST": roles.MANAGE_USERS},
    "evaluations:team-roles": {"POST": roles.MANAGE_USERS},
    "evaluations:team-active": {"POST": roles.MANAGE_USERS},
    "evaluations:token-list": {"GET": LOGIN, "POST": LOGIN},
    "evaluations:token-revoke": {"POST": LOGIN},
    # --- captured traffic: reads for everyone; capture tokens spend an endpoint's key (admin)
    "evaluations:capture-token-list": {"GET": roles.ENDPOINT_CONNECTION, "POST": roles.ENDPOINT_CONNECTION},
    "evaluations:capture-token-revoke": {"POST": roles.ENDPOINT_CONNECTION},
    "evaluations:traffic": {"GET": R},
    "evaluations:traffic-call": {"GET": R},
    "evaluations:traffic-to-suite": {"POST": U},
    "evaluations:schedule-new": {"GET": roles.SCHEDULE, "POST": roles.SCHEDULE},
    "evaluations:schedule-edit": {"GET": roles.SCHEDULE, "POST": roles.SCHEDULE},
    "evaluations:schedule-toggle": {"POST": roles.SCHEDULE},
    "evaluations:schedule-delete": {"GET": roles.SCHEDULE, "POST": roles.SCHEDULE},
    # --- review, sign-off, audit
    "evaluations:run-review": {"GET": roles.REVIEW},
    "evaluations:run-review-result": {"GET": roles.REVIEW, "POST": roles.REVIEW},
    "evaluations:run-review-summary": {"GET": R},
    "evaluations:run-review-threshold": {"POST": ES},
    "evaluations:run-review-accept-passing": {"POST": roles.REVIEW},
    "evaluations:run-captured-apply": {"POST": U},
    "evaluations:run-export-reviewed": {"GET": R},
    "evaluations:run-signoff-request": {"POST": roles.REQUEST_SIGNOFF},
    "evaluations:run-delete": {"GET": roles.DELETE_RUN, "POST": roles.DELETE_RUN},
    "evaluations:signoff-list": {"GET": R},
    "evaluations:signoff-decide": {"POST": roles.APPROVE},
    "evaluations:signoff-withdraw": {"POST": roles.REQUEST_SIGNOFF},
    "evaluations:audit-list": {"GET": "evaluations.view_auditevent", "POST": roles.MANAGE_USERS},
    # --- synthetic examples: reads for everyone, the rest with the permission to upload suites
    "evaluations:suite-synthetic": {"GET": R, "POST": U},
    "evaluations:synthetic-detail": {"GET": R},
    "evaluations:synthetic-prompt": {"GET": R, "POST": roles.EDIT_STRATEGY},
    "evaluations:synthetic-review": {"POST": U},
    "evaluations:synthetic-accept-all": {"POST": U},
    "evaluations:synthetic-promote": {"POST": U},
    "evaluations:synthetic-cancel": {"POST": U},
    # --- API v1
    "api-v1:suite-decision": {"GET": R},
    "api-v1:suite-knowledge": {"GET": R, "POST": U},
    "api-v1:suite-list": {"GET": R, "POST": U},
    "api-v1:suite-detail": {"GET": R},
    "api-v1:suite-versions": {"GET": R},
    "api-v1:suite-version": {"GET": R},
    "api-v1:suite-cases": {"GET": R},
    "api-v1:endpoint-list": {"GET": R, "POST": roles.ADD_ENDPOINT},  # and ENDPOINT_CONNECTION
    "api-v1:endpoint-detail": {"GET": R, "PATCH": EE},  # a connection field needs ENDPOINT_CONNECTION
    "api-v1:strategy-list": {"GET": R},
    "api-v1:strategy-detail": {"GET": R},
    "api-v1:strategy-optimize": {"POST": roles.RUN},
    "api-v1:run-list": {"GET": R, "POST": roles.RUN},
    "api-v1:run-detail": {"GET": R, "DELETE": roles.DELETE_RUN},
    "api-v1:run-signoff": {"GET": R, "POST": roles.REQUEST_SIGNOFF},
    "api-v1:run-signoff-approve": {"POST": roles.APPROVE},
    "api-v1:run-signoff-reject": {"POST": roles.APPROVE},
    "api-v1:run-reviews": {"GET": R, "POST": roles.REVIEW},
    "api-v1:run-reviews-accept-passing": {"POST": roles.REVIEW},
    "api-v1:shadow-list": {"GET": R, "POST": roles.RUN},
    "api-v1:shadow-detail": {"GET": R},
    "api-v1:shadow-enabled": {"POST": roles.RUN},
    "api-v1:run-baseline": {"POST": roles.SET_BASELINE},
    "api-v1:run-cancel": {"POST": roles.RUN},
    "api-v1:run-resume": {"POST": roles.RUN},
    "api-v1:run-results": {"GET": R},
    "api-v1:run-summary": {"GET": R},
    "api-v1:finding-list": {"GET": R},
    "api-v1:finding-detail": {"GET": R},
    "api-v1:finding-acknowledge": {"POST": roles.ACK_FINDING},
    "api-v1:schedule-list": {"GET": R, "POST": roles.SCHEDULE},
    "api-v1:schedule-detail": {"GET": R, "PATCH": roles.SCHEDULE, "DELETE": roles.SCHEDULE},
    "api-v1:finetune-list": {"GET": R, "POST": roles.FINETUNE},
    "api-v1:finetune-detail": {"GET": R},
    "api-v1:finetune-cancel": {"POST": roles.FINETUNE},
    "api-v1:suite-synthetic": {"GET": R, "POST": U},
    "api-v1:synthetic-list": {"GET": R},
    "api-v1:synthetic-detail": {"GET": R},
    "api-v1:synthetic-review": {"POST": U},
    "api-v1:synthetic-accept-all": {"POST": U},
    "api-v1:synthetic-promote": {"POST": U},
    "api-v1:synthetic-cancel": {"POST": U},
    "api-v1:capture-token-list": {"GET": roles.ENDPOINT_CONNECTION, "POST": roles.ENDPOINT_CONNECTION},
    "api-v1:capture-token-revoke": {"POST": roles.ENDPOINT_CONNECTION},
    "api-v1:traffic-list": {"GET": R},
    "api-v1:traffic-detail": {"GET": R},
    "api-v1:traffic-summary": {"GET": R},
    "api-v1:traffic-apply-reviews": {"POST": U},
    "api-v1:traffic-to-suite": {"POST": U},
    # --- the read-only API of runs
    "api:run-list": {"GET": R},
    "api:run-detail": {"GET": R},
}

# What a route's `pk` (or `id`) is, when it is not the run (the default, as under runs/).
PK_OF = {
    "suite": ("evaluations:suite-", "api-v1:suite-", "evaluations:schedule-new"),
    "finetune": ("evaluations:finetune-", "api-v1:finetune-"),
    "finding": ("evaluations:finding-", "api-v1:finding-"),
    "channel": ("evaluations:alert-channel-",),
    "delivery": ("evaluations:alert-retry",),
    "member": ("evaluations:team-",),
    "token": ("evaluations:token-",),
    "schedule": ("evaluations:schedule-", "api-v1:schedule-"),
    "endpoint": ("api-v1:endpoint-",),
    "strategy": ("api-v1:strategy-", "evaluations:strategy-"),
    "signoff": ("evaluations:signoff-decide", "evaluations:signoff-withdraw"),
    "synthetic": ("evaluations:synthetic-", "api-v1:synthetic-"),
    "capture_token": ("evaluations:capture-token-", "api-v1:capture-token-"),
    "traffic": ("evaluations:traffic-call", "api-v1:traffic-detail"),
    "shadow": ("evaluations:shadow-", "api-v1:shadow-"),
}

IDENTITIES = ["anonymous", "no role", *roles.ROLE_NAMES]


def _walk(patterns, prefix: str = "", namespace: str | None = None, converters=None):
    """(route name, URL pattern text, path converters, callback) of every route, admin excluded."""
    for entry in patterns:
        pattern_converters = {**(converters or {}), **getattr(entry.pattern, "converters", {})}
        if isinstance(entry, URLResolver):
            if entry.namespace == "admin":
                continue  # Django's admin has its own staff check (see test_the_admin_sends_...)
            ns = ":".join(n for n in (namespace, entry.namespace) if n) or None
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern), ns, pattern_converters)
        elif isinstance(entry, URLPattern):
            name = f"{namespace}:{entry.name}" if namespace and entry.name else entry.name
            yield name, prefix + str(entry.pattern), pattern_converters, entry.callback


def project_routes() -> list[tuple[str, str, dict, object]]:
    return list(_walk(get_resolver().url_patterns))


def _pk_object(name: str) -> str:
    for kind, prefixes in PK_OF.items():
        if name.startswith(prefixes):
            return kind
    return "run"


@pytest.fixture
def world(db, task_queue):
    """Real rows for every route's ids: a suite with a finished run, its finding, a schedule, ..."""
    version = suite_version(test_cases=2, train_cases=2, name="matrix")
    endpoint = EndpointFactory(name="matrix-endpoint")
    run = finished_run(version, [ArmSpec(endpoint, "zero-shot", [1.0, 0.0])])
    arm = run.arms.get()
    finding = Finding.objects.create(
        suite=version.suite, run=run, arm=arm, kind="regression", title="score dropped"
    )
    channel = AlertChannel.objects.create(name="team mail", kind="email", recipients="team@example.com")
    return {
        "suite": version.suite,
        "version": version,
        "endpoint": endpoint,
        "strategy": arm.strategy,
        "run": run,
        "result": Result.objects.filter(arm=arm).order_by("pk").first(),
        "finding": finding,
        "finetune": FineTuneJob.objects.create(suite_version=version, base_endpoint=endpoint),
        "synthetic": SyntheticGeneration.objects.create(
            suite_version=version, endpoint=endpoint, strategy=synthesize_strategy(), requested=3
        ),
        "shadow": ShadowConfig.objects.create(
            name="matrix-shadow", live_endpoint=endpoint, candidate=EndpointFactory(name="matrix-candidate")
        ),
        "capture_token": capture_token_create(name="matrix-app", endpoints=[endpoint])[0],
        "traffic": TrafficCall.objects.create(
            call_id="matrix-call", endpoint=endpoint, endpoint_name=endpoint.name, started_at=timezone.now()
        ),
        "channel": channel,
        "delivery": AlertDelivery.objects.create(finding=finding, channel=channel, status="failed"),
        "schedule": Schedule.objects.create(suite=version.suite, name="nightly"),
        "member": UserFactory(username="member", roles=["viewer"]),
        # requested by someone who is none of the identities walked: they may all decide on it
        "signoff": SignOff.objects.create(
            run=run, suite=version.suite, requested_by=UserFactory(username="requester", roles=["editor"])
        ),
    }


def _kwargs(name: str, converters: dict, world: dict) -> dict:
    values = {
        "pk": lambda: world[_pk_object(name)].pk,
        "id": lambda: world[_pk_object(name)].pk,
        "number": lambda: world["version"].number,
        "endpoint_pk": lambda: world["endpoint"].pk,
        "result_pk": lambda: world["result"].pk,
    }
    unknown = set(converters) - set(values)
    assert not unknown, f"route {name}: no test value for its parameter(s) {sorted(unknown)}; add one"
    return {param: values[param]() for param in converters}


def _served_methods(callback) -> set[str] | None:
    """The methods a DRF route serves (None for a plain Django view: the table is the truth)."""
    actions = getattr(callback, "actions", None)
    if actions is not None:
        return {m.upper() for m in actions} - {"HEAD", "OPTIONS"}
    cls = getattr(callback, "cls", None)
    if cls is not None and hasattr(cls, "http_method_names"):
        return {m.upper() for m in cls.http_method_names if m not in ("head", "options") and hasattr(cls, m)}
    return None


def _login_url(url: str) -> str:
    return resolve_url(settings.LOGIN_URL) + "?" + urlencode({"next": url}, safe="/")


def _sent_to_login(response) -> bool:
    """Refused for want of a login (logging out also ends on the login page, without `next`)."""
    login = resolve_url(settings.LOGIN_URL) + "?next="
    return response.status_code == 302 and response["Location"].startswith(login)


def _request(client, method: str, url: str):
    """One request in a savepoint rolled back afterwards, the client's cookies restored too."""
    cookies = copy.deepcopy(client.cookies)
    api = is_api_path(url)
    with transaction.atomic():
        kwargs = {"data": "{}", "content_type": "application/json"} if api and method != "GET" else {}
        response = client.generic(method, url, **kwargs)
        if getattr(response, "streaming", False):
            b"".join(response.streaming_content)
        transaction.set_rollback(True)
    client.cookies = cookies
    return response


def _role_permissions(identity: str) -> set[str]:
    if identity in ("anonymous", "no role"):
        return set()
    group = Group.objects.get(name=identity)
    return {
        f"{app}.{code}" for app, code in group.permissions.values_list("content_type__app_label", "codename")
    }


def _expected(identity: str, perm: str, held: set[str]) -> str:
    if perm == PUBLIC:
        return "allowed"
    if identity == "anonymous":
        return "login"
    if perm == LOGIN:
        return "allowed"
    return "allowed" if perm in held else "403"


def _answer(response) -> str:
    if response.status_code == 401:
        return "401"
    if response.status_code == 403:
        return "403"
    if _sent_to_login(response):
        return "login"
    return "allowed"


def test_every_route_of_the_project_is_in_the_table():
    names = [name for name, *_ in project_routes()]
    unnamed = [pattern for name, pattern, *_ in project_routes() if not name]
    assert not unnamed, f"routes without a name (the table needs one): {unnamed}"
    unknown = sorted(set(names) - set(ROUTES))
    assert not unknown, (
        "routes missing from ROUTES in tests/views/test_role_matrix.py (say which permission each "
        f"method needs): {', '.join(unknown)}"
    )
    gone = sorted(set(ROUTES) - set(names))
    assert not gone, f"ROUTES lists routes that no longer exist: {', '.join(gone)}"


def test_the_table_lists_exactly_the_methods_each_api_route_serves():
    wrong = []
    for name, _, _, callback in project_routes():
        served = _served_methods(callback)
        if served is not None and name in ROUTES and served != set(ROUTES[name]):
            wrong.append(f"{name}: serves {sorted(served)}, the table says {sorted(ROUTES[name])}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("identity", IDENTITIES)
def test_each_route_answers_each_identity_as_the_table_says(client, world, identity):
    if identity != "anonymous":
        user = UserFactory(
            username=f"matrix-{identity.replace(' ', '-')}", roles=[] if identity == "no role" else [identity]
        )
        client.force_login(user)
        world["token"] = api_token_create(user=user, name="matrix")[0]
    else:
        world["token"] = world["member"]  # any id: the login comes first
    held = _role_permissions(identity)
    problems, allowed, refused = [], 0, 0
    for name, _, converters, callback in project_routes():
        if name not in ROUTES:
            continue  # reported by test_every_route_of_the_project_is_in_the_table
        url = reverse(name, kwargs=_kwargs(name, converters, world))
        api = is_api_path(url)
        for method, perm in ROUTES[name].items():
            response = _request(client, method, url)
            got = _answer(response)
            want = _expected(identity, perm, held)
            if want == "login" and api:
                want = "401"
            if got != want:
                problems.append(f"{method} {url} ({name}): {got} ({response.status_code}), expected {want}")
                continue
            if want == "login" and response["Location"] != _login_url(url):
                problems.append(f"{method} {url}: sent to {response['Location']}, not {_login_url(url)}")
            if want == "allowed":
                allowed += 1
                if method == "GET" and response.status_code not in (200, 302):
                    problems.append(
                        f"GET {url} ({name}): {response.status_code}, expected 200 for {identity}"
                    )
            else:
                refused += 1
        if _served_methods(callback) is None and identity == "admin":
            # A page answers only the methods the table lists: anything else is a 405.
            for method in {"GET", "POST"} - set(ROUTES[name]):
                response = _request(client, method, url)
                if response.status_code != 405:
                    problems.append(
                        f"{method} {url} ({name}): {response.status_code}, the table lists no {method}"
                    )
    assert not problems, f"{identity}:\n" + "\n".join(problems)
    # Not vacuous: every identity is refused somewhere but the admin, allowed somewhere but anonymous.
    assert refused > 0 or identity == "admin"
    assert allowed > (0 if identity == "anonymous" else 3)


def test_anonymous_users_reach_the_login_page_and_static_files(client, db):
    assert client.get(reverse("login")).status_code == 200
    response = client.get(static("evaluations/app.css"))
    assert response.status_code == 200
    assert b"".join(response.streaming_content)  # served by WhiteNoise, before any login check
    assert client.get("/no-such-page/").status_code == 404  # nothing else to see


def test_the_admin_sends_anonymous_users_to_its_own_login(client, db):
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/admin/"
    assert client.get("/admin/login/").status_code == 200


def test_the_403_page_names_the_roles_that_may(client, world):
    client.force_login(UserFactory(username="vera", roles=["viewer"]))
    response = client.get(reverse("evaluations:run-new"))
    assert response.status_code == 403
    html = response.content.decode()
    assert "start, cancel and re-score runs" in html
    assert "roles that have it: editor, admin" in html
    assert "You are vera, with the role viewer" in html


def test_an_api_token_acts_with_its_users_roles(client, world):
    viewer = UserFactory(username="tok-viewer", roles=["viewer"])
    nobody = UserFactory(username="tok-nobody")
    _, viewer_token = api_token_create(user=viewer, name="ci")
    _, nobody_token = api_token_create(user=nobody, name="ci")
    runs = reverse("api-v1:run-list")
    assert client.get(runs, HTTP_AUTHORIZATION=f"Bearer {viewer_token}").status_code == 200
    refused = client.post(
        runs, "{}", content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {viewer_token}"
    )
    assert refused.status_code == 403
    assert "evaluations.add_run" in refused.json()["detail"] and "editor" in refused.json()["detail"]
    assert client.get(runs, HTTP_AUTHORIZATION=f"Bearer {nobody_token}").status_code == 403
    assert client.get(runs, HTTP_AUTHORIZATION="Bearer ftvp_not-a-token").status_code == 401
    assert client.get(runs).status_code == 401  # no session, no token: not a redirect to the login page


def _patch(client, url: str, body: dict):
    import json

    return client.patch(url, json.dumps(body), content_type="application/json")


def test_an_editor_changes_prices_but_not_an_endpoints_connection(client, world):
    endpoint = world["endpoint"]
    url = reverse("api-v1:endpoint-detail", args=[endpoint.pk])
    client.force_login(UserFactory(username="edna", roles=["editor"]))
    assert _patch(client, url, {"price_in": "3.5", "params": {"temperature": 0.2}}).status_code == 200
    for field, value in [
        ("base_url", "http://10.0.0.1/v1"),
        ("model", "other"),
        ("api_key_env", "OTHER_KEY"),
    ]:
        response = _patch(client, url, {field: value, "price_in": "9"})
        assert response.status_code == 403, field
        assert f"setting {field}" in response.json()["detail"]
        assert roles.ENDPOINT_CONNECTION in response.json()["detail"]
    endpoint.refresh_from_db()
    assert float(endpoint.price_in) == 3.5 and endpoint.base_url == "http://127.0.0.1:9/v1"
    created = client.post(
        reverse("api-v1:endpoint-list"),
        {"name": "new", "provider": "openai", "model": "m"},
        content_type="application/json",
    )
    assert created.status_code == 403


def test_an_admin_changes_an_endpoints_connection(client, world):
    endpoint = world["endpoint"]
    client.force_login(UserFactory(username="ada", roles=["admin"]))
    response = _patch(
        client,
        reverse("api-v1:endpoint-detail", args=[endpoint.pk]),
        {"base_url": "http://127.0.0.1:8/v1", "api_key_env": "LOCAL_KEY"},
    )
    assert response.status_code == 200, response.content
    endpoint.refresh_from_db()
    assert endpoint.base_url == "http://127.0.0.1:8/v1"


@pytest.mark.parametrize(
    ("role", "visible", "hidden"),
    [
        ("viewer", [], ["New run", "Upload a suite", "Save settings", "New schedule", ">Team<"]),
        ("editor", ["New run", "Save settings", "New schedule"], ["Make this run the baseline", ">Team<"]),
        ("admin", ["New run", "Save settings", "New schedule", ">Team<"], []),
    ],
)
def test_buttons_show_only_what_the_role_may_do(client, world, role, visible, hidden):
    client.force_login(UserFactory(username=f"b-{role}", roles=[role]))
    html = client.get(reverse("evaluations:suite-detail", args=[world["suite"].pk])).content.decode()
    html += client.get(reverse("evaluations:suite-list")).content.decode()
    for text in visible:
        assert text in html, f"{role} should see {text!r}"
    for text in hidden:
        assert text not in html, f"{role} should not see {text!r}"
    assert f"b-{role} · {role}" in html  # the roles next to the logout link
