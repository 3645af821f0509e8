"""The decision page: is prompting enough, or does fine-tuning pay off? And its calculator."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from evaluations import roles
from evaluations.access import role_required
from evaluations.analysis.costs import calculator
from evaluations.forms import BreakEvenForm, DecisionProfileForm, EndpointCostForm
from evaluations.models import Endpoint, EndpointKind, Suite
from evaluations.selectors.decisions import DecisionError, SuiteDecision, decision_runs, suite_decision
from evaluations.services.endpoints import endpoint_update_costs
from evaluations.services.suites import suite_update_profile


@role_required(roles.READ)
@require_safe
def decision_page(request: HttpRequest, pk: int) -> HttpResponse:
    suite = get_object_or_404(Suite, pk=pk)
    run_param = request.GET.get("run", "")
    result = None
    if run_param:
        try:
            result = suite_decision(suite, run_id=int(run_param) if run_param.isdigit() else -1)
        except DecisionError:
            messages.error(
                request, f"Run {run_param!r} is not a finished run of {suite.name}; showing the latest one."
            )
    if result is None:
        result = suite_decision(suite)
    return render(request, "evaluations/decision.html", _context(suite, result))


def _context(suite: Suite, result: SuiteDecision) -> dict:
    d = result.decision
    profile_initial = {f: getattr(suite, f) for f in DecisionProfileForm.base_fields}
    profile_form = DecisionProfileForm(initial=profile_initial)
    profile_form.fields["examples_available"].widget.attrs["placeholder"] = (
        f"{result.train_examples} (train split)"
    )
    endpoints = {a.endpoint.pk: a.endpoint for a in result.arms}
    endpoint_forms = []
    for endpoint in sorted(endpoints.values(), key=lambda e: (e.kind != EndpointKind.FINE_TUNED, e.name)):
        form = EndpointCostForm(
            initial={
                "price_in": endpoint.price_in,
                "price_out": endpoint.price_out,
                "price_hour": endpoint.price_hour,
                "hosting_monthly": endpoint.hosting_monthly,
                "training_cost": endpoint.training_cost,
            },
            prefix=f"e{endpoint.pk}",
        )
        if endpoint.kind != EndpointKind.FINE_TUNED:
            del form.fields["training_cost"]
        endpoint_forms.append((endpoint, form))
    frontier = set(d.frontier)
    costs = {row["arm"]: row for row in d.costs}
    scatter = [
        {
            "label": row["arm"],
            "family": row["family"],
            "x": costs[row["arm"]]["cost_per_request"],
            "y": row["mean"],
            "low": row["ci"][0],
            "high": row["ci"][1],
            "frontier": row["arm"] in frontier,
        }
        for row in d.ladder
        if costs.get(row["arm"], {}).get("cost_per_request") is not None
    ]
    be = d.break_even or {}
    calc_initial = {}
    saved = be.get("prompt_tokens_saved")
    if be.get("available") and saved and saved > 0 and be["saving_per_request"] > 0:
        # The calculator, filled in to reproduce the measured break-even: the saving per request
        # expressed as a price per 1K of the prompt tokens saved.
        calc_initial = {
            "tokens_saved": round(saved),
            "price_per_1k_tokens": round(be["saving_per_request"] * 1000 / saved, 8),
            "requests_per_month": round(d.profile.get("monthly_volume") or suite.monthly_volume),
            "training_cost": round(be["training_cost"], 4),
            "horizon_months": suite.horizon_months,
            "retrains_per_year": suite.retrains_per_year,
            "hosting_per_month": max(0.0, be["hosting_per_month"]),
        }
    return {
        "suite": suite,
        "result": result,
        "d": d,
        "runs": decision_runs(suite)[:50],
        "profile_form": profile_form,
        "endpoint_forms": endpoint_forms,
        "chart": {
            "target": suite.quality_target,
            "points": scatter,
            "curves": d.curves,
            "prompting_arm": be.get("prompting_arm"),
            "fine_tuned_arm": be.get("fine_tuned_arm"),
        },
        "calc_form": BreakEvenForm(initial=calc_initial),
    }


def _back(suite: Suite, request: HttpRequest) -> HttpResponse:
    url = reverse("evaluations:suite-decision", args=[suite.pk])
    run = request.POST.get("run", "")
    return redirect(f"{url}?run={run}" if run.isdigit() else url)


def _problems(form) -> str:
    return "; ".join(f"{field}: {' '.join(errs)}" for field, errs in form.errors.items())


def _refused(exc: ValidationError) -> str:
    """A service's ValidationError, each message with its field (e.g. a value its column cannot hold)."""
    if not hasattr(exc, "error_dict"):
        return "; ".join(exc.messages)
    return "; ".join(f"{field}: {' '.join(errs)}" for field, errs in exc.message_dict.items())


@role_required(roles.EDIT_SUITE)
@require_POST
def decision_profile(request: HttpRequest, pk: int) -> HttpResponse:
    suite = get_object_or_404(Suite, pk=pk)
    form = DecisionProfileForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Profile not saved: {_problems(form)}")
        return _back(suite, request)
    try:
        suite_update_profile(suite=suite, **form.cleaned_data, user=request.user)
    except ValidationError as exc:
        messages.error(request, f"Profile not saved: {_refused(exc)}")
    else:
        messages.success(request, "Profile saved; the decision below uses it.")
    return _back(suite, request)


@role_required(roles.EDIT_ENDPOINT)
@require_POST
def decision_endpoint_costs(request: HttpRequest, pk: int, endpoint_pk: int) -> HttpResponse:
    suite = get_object_or_404(Suite, pk=pk)
    # Only the endpoints this suite's decisions are about are edited from its page.
    endpoint = get_object_or_404(
        Endpoint.objects.filter(arms__run__suite_version__suite=suite).distinct(), pk=endpoint_pk
    )
    form = EndpointCostForm(request.POST, prefix=f"e{endpoint.pk}")
    if endpoint.kind != EndpointKind.FINE_TUNED:
        del form.fields["training_cost"]
    if not form.is_valid():
        messages.error(request, f"Costs of {endpoint.name} not saved: {_problems(form)}")
        return _back(suite, request)
    try:
        endpoint_update_costs(endpoint=endpoint, **form.cleaned_data, user=request.user)
    except ValidationError as exc:
        messages.error(request, f"Costs of {endpoint.name} not saved: {_refused(exc)}")
    else:
        messages.success(request, f"Costs of {endpoint.name} saved.")
    return _back(suite, request)


@role_required(roles.READ)
@require_safe
def breakeven_page(request: HttpRequest) -> HttpResponse:
    """The standalone calculator; htmx requests get the result fragment only."""
    form = BreakEvenForm(request.GET or None)
    result = None
    if form.is_bound and form.is_valid():
        data = {k: v for k, v in form.cleaned_data.items() if v is not None}
        try:
            result = calculator(**data)
        except ValueError as exc:
            form.add_error(None, str(exc))
    fragment = bool(request.headers.get("HX-Request"))
    template = "evaluations/_breakeven_result.html" if fragment else "evaluations/breakeven.html"
    # htmx swaps only 2xx answers: the fragment carries its errors with a 200.
    status = 400 if form.is_bound and form.errors and not fragment else 200
    return render(request, template, {"form": form, "calc": result, "fragment": fragment}, status=status)
