"""The run page's sign-off section and the suite page's history, rendered with their own reads so the
pages' views need no change: `{% include "evaluations/_run_signoff.html" %}` and
`{% include "evaluations/_suite_history.html" %}`."""

from __future__ import annotations

from django import template
from django.core.paginator import Paginator

from evaluations.audit_selectors import HISTORY_PER_PAGE, audit_rows, suite_events
from evaluations.signoff_selectors import signoff_panel

register = template.Library()


@register.inclusion_tag("evaluations/_signoff_panel.html", takes_context=True)
def run_signoff_panel(context, run):
    request = context["request"]
    return {
        **signoff_panel(run, request.user),
        "run": run,
        "user": request.user,
        "perms": context.get("perms"),
        "csrf_token": context.get("csrf_token"),
    }


@register.inclusion_tag("evaluations/_suite_history_panel.html", takes_context=True)
def suite_history_panel(context, suite):
    request = context["request"]
    page = Paginator(suite_events(suite.pk), HISTORY_PER_PAGE).get_page(request.GET.get("history_page"))
    return {"suite": suite, "page": page, "rows": audit_rows(page.object_list), "request": request}
