"""The audit log: every event with filters (action, who, suite), and a check of the hash chain on
demand (a POST, by an admin: it re-hashes the whole log). A suite's own history is on the suite page
(_suite_history_panel.html)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from evaluations import roles
from evaluations.access import role_required
from evaluations.models import Suite
from evaluations.selectors.audit import AUDIT_PER_PAGE, audit_actions, audit_actors, audit_events, audit_rows
from evaluations.services.audit import audit_verify
from evaluations.views.pages import _page

VIEW_AUDIT = "evaluations.view_auditevent"
VERIFY_AUDIT = roles.MANAGE_USERS  # verifying reads every event: admins only


@require_http_methods(["GET", "HEAD", "POST"])
@role_required(VIEW_AUDIT, post=(VIEW_AUDIT, VERIFY_AUDIT))
def audit_list(request: HttpRequest) -> HttpResponse:
    action = request.GET.get("action", "").strip()[:60]
    actor = request.GET.get("actor", "").strip()[:150]
    raw_suite = request.GET.get("suite", "")
    suite_id = int(raw_suite) if raw_suite.isdigit() and len(raw_suite) < 19 else None
    page = _page(request, audit_events(action=action, actor=actor, suite_id=suite_id), AUDIT_PER_PAGE)
    actions = audit_actions(selected="" if action.endswith(".") else action)  # "suite." is a group
    return render(
        request,
        "evaluations/audit_list.html",
        {
            "page": page,
            "rows": audit_rows(page.object_list),
            "action": action,
            "actor": actor,
            "suite_id": suite_id,
            "actions": actions,
            "action_groups": sorted({a.split(".", 1)[0] + "." for a in actions if "." in a}),
            "actors": audit_actors(selected=actor),
            "suites": Suite.objects.order_by("name").only("pk", "name"),
            "can_verify": request.user.has_perm(VERIFY_AUDIT),
            "check": audit_verify() if request.method == "POST" and request.POST.get("verify") else None,
        },
    )
