"""The strategies: each prompt recipe by name and version; an optimised few-shot strategy with the
demonstrations it froze and what its search cost; a version's diff against the previous one."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_safe

from evaluations import roles
from evaluations.access import role_required
from evaluations.models import Strategy
from evaluations.selectors.strategies import (
    strategy_diff,
    strategy_examples,
    strategy_previous,
    strategy_rows,
    strategy_search,
)


@role_required(roles.READ)
@require_safe
def strategy_list(request: HttpRequest) -> HttpResponse:
    return render(request, "evaluations/strategy_list.html", {"rows": strategy_rows()})


@role_required(roles.READ)
@require_safe
def strategy_detail(request: HttpRequest, pk: int) -> HttpResponse:
    strategy = get_object_or_404(Strategy, pk=pk)
    previous = strategy_previous(strategy)
    context = {
        "strategy": strategy,
        "search": strategy_search(strategy),
        "examples": strategy_examples(strategy),
        "previous": previous,
        "diff": strategy_diff(previous, strategy) if previous else None,
    }
    return render(request, "evaluations/strategy_detail.html", context)
