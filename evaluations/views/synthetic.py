"""Synthetic examples: a suite's generations with the start form, one generation's candidates to review,
accept-all, promotion into a new suite version, cancel. Reads need the viewer's role; everything else
the permission to upload suites (the editor's), since it ends in a new suite version."""

from __future__ import annotations

import json

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from evaluations import roles
from evaluations.access import role_required
from evaluations.forms import SyntheticForm, SyntheticPromptForm
from evaluations.models import CandidateStatus, Suite, SyntheticCandidate
from evaluations.selectors import synthetic as reads
from evaluations.services.synthetic import (
    SyntheticError,
    candidate_review,
    candidates_accept_all,
    synthesize_strategy_version,
    synthetic_cancel,
    synthetic_create,
    synthetic_promote,
)
from evaluations.views.pages import _page


@role_required(roles.READ, post=roles.UPLOAD)
def suite_synthetic(request: HttpRequest, pk: int) -> HttpResponse:
    suite = get_object_or_404(Suite, pk=pk)
    initial = {"seeds": request.GET.get("seeds", "")}
    form = SyntheticForm(request.POST or None, suite=suite, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            generation = synthetic_create(
                suite_version=data["suite_version"],
                endpoint=data["endpoint"],
                seed_keys=data["seeds"],
                n=data["n"],
                strategy=data["strategy"],
                threshold=data["threshold"],
                user=request.user,
            )
        except SyntheticError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(
                request, f"Generation #{generation.pk} queued: {generation.requested} candidates."
            )
            return redirect("evaluations:synthetic-detail", pk=generation.pk)
    train_keys = reads.seed_keys(suite.latest_version())
    return render(
        request,
        "evaluations/synthetic_list.html",
        {
            "suite": suite,
            "form": form,
            "page": _page(request, reads.generations(suite), 25),
            "train_keys": train_keys,
        },
        status=400 if request.method == "POST" else 200,
    )


def _generation(pk: int):
    found = reads.generation(pk)
    if found is None:
        raise Http404("no such generation")
    return found


@role_required(roles.READ)
@require_safe
def synthetic_detail(request: HttpRequest, pk: int) -> HttpResponse:
    generation = _generation(pk)
    status = request.GET.get("status") or ""
    if status not in CandidateStatus.values:
        status = ""
    page = _page(request, reads.candidates(generation, status or None), 50)
    for candidate in page.object_list:
        candidate.input_text = _as_text(candidate.input)
        candidate.expected_text = _as_text(candidate.expected)
    return render(
        request,
        "evaluations/synthetic_detail.html",
        {
            "generation": generation,
            "counts": reads.candidate_counts(generation),
            "page": page,
            "status": status,
            "statuses": CandidateStatus.choices,
            "reviewable": generation.status == "succeeded" and generation.promoted_version_id is None,
        },
    )


def _as_text(value: object) -> str:
    """A candidate's input or expected value as its review form shows it: text as it is, else JSON."""
    if isinstance(value, str):
        return value
    return "" if value is None else json.dumps(value, ensure_ascii=False)


def _edited(raw: str | None, original: object) -> object:
    """A review form's field: None when left as it was; text for a text value, else JSON."""
    if raw is None:
        return None
    if isinstance(original, str):
        return None if raw.strip() == original.strip() else raw
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw  # a plain text in place of a list: the service checks it
    return None if value == original else value


@role_required(roles.UPLOAD)
@require_POST
def synthetic_review(request: HttpRequest, pk: int) -> HttpResponse:
    generation = _generation(pk)
    candidate_id = request.POST.get("candidate", "")
    candidate = (
        get_object_or_404(SyntheticCandidate, pk=int(candidate_id), generation=generation)
        if candidate_id.isdigit()
        else None
    )
    if candidate is None:
        raise Http404("no such candidate")
    action = request.POST.get("action", "")
    accepting = action == "accept"
    try:
        candidate_review(
            candidate_id=candidate.pk,
            action=action,
            input=_edited(request.POST.get("input"), candidate.input) if accepting else None,
            expected=_edited(request.POST.get("expected"), candidate.expected) if accepting else None,
            user=request.user,
        )
    except SyntheticError as exc:
        messages.error(request, f"Candidate {candidate.position}: {exc}")
    return redirect(
        reverse("evaluations:synthetic-detail", args=[generation.pk]) + f"#candidate-{candidate.pk}"
    )


@role_required(roles.UPLOAD)
@require_POST
def synthetic_accept_all(request: HttpRequest, pk: int) -> HttpResponse:
    generation = _generation(pk)
    try:
        accepted = candidates_accept_all(generation_id=generation.pk, user=request.user)
    except SyntheticError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{accepted} pending candidate(s) accepted.")
    return redirect("evaluations:synthetic-detail", pk=generation.pk)


@role_required(roles.UPLOAD)
@require_POST
def synthetic_promote_view(request: HttpRequest, pk: int) -> HttpResponse:
    generation = _generation(pk)
    try:
        version = synthetic_promote(generation_id=generation.pk, user=request.user)
    except SyntheticError as exc:
        messages.error(request, str(exc))
        return redirect("evaluations:synthetic-detail", pk=generation.pk)
    messages.success(
        request, f"v{version.number} made: the cases of v{generation.suite_version.number} and the accepted "
        "candidates as train cases.",
    )  # fmt: skip
    return redirect("evaluations:suite-detail", pk=version.suite_id)


@role_required(roles.UPLOAD)
@require_POST
def synthetic_cancel_view(request: HttpRequest, pk: int) -> HttpResponse:
    generation = _generation(pk)
    if synthetic_cancel(generation_id=generation.pk, user=request.user):
        messages.info(request, f"Generation #{generation.pk} cancelled.")
    else:
        messages.warning(request, f"Generation #{generation.pk} had already finished.")
    return redirect("evaluations:synthetic-detail", pk=generation.pk)


@role_required(roles.READ, post=roles.EDIT_STRATEGY)
def synthetic_prompt(request: HttpRequest) -> HttpResponse:
    """The generation prompt's latest version, and a form for the next one."""
    current = reads.latest_synthesize()
    params = (current.params if current is not None else None) or {}
    form = SyntheticPromptForm(
        request.POST or None,
        initial={"system": params.get("system"), "instruction": params.get("instruction"),
                 "per_call": params.get("per_call", 10)},
    )  # fmt: skip
    if request.method == "POST" and form.is_valid():
        try:
            strategy = synthesize_strategy_version(**form.cleaned_data, user=request.user)
        except SyntheticError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"{strategy} saved: new generations use it by default.")
            return redirect("evaluations:strategy-detail", pk=strategy.pk)
    return render(
        request,
        "evaluations/synthetic_prompt.html",
        {"current": current, "form": form, "versions": reads.synthesize_strategies()},
        status=400 if request.method == "POST" else 200,
    )
