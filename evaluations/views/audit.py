"""The audit log: every event with filters (action, who, suite), and a check of the hash chain on
demand (?verify=1). A suite's own history is on the suite page (_suite_history.html)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from evaluations.access import role_required
from evaluations.audit_selectors import AUDIT_PER_PAGE, audit_actions, audit_actors, audit_events, audit_rows
from evaluations.models import Suite
from evaluations.services.audit import audit_verify
from evaluations.views.pages import _page

VIEW_AUDIT = "evaluations.view_auditevent"


@require_safe
@role_required(VIEW_AUDIT)
def audit_list(request: HttpRequest) -> HttpResponse:
    action = request.GET.get("action", "").strip()[:60]
    actor = request.GET.get("actor", "").strip()[:150]
    raw_suite = request.GET.get("suite", "")
    suite_id = int(raw_suite) if raw_suite.isdigit() and len(raw_suite) < 19 else None
    page = _page(request, audit_events(action=action, actor=actor, suite_id=suite_id), AUDIT_PER_PAGE)
    actions = audit_actions()
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
            "actors": audit_actors(),
            "suites": Suite.objects.order_by("name").only("pk", "name"),
            "check": audit_verify() if request.GET.get("verify") else None,
        },
    )
