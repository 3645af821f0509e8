"""Server-rendered pages. Thin: parse the request, call a service or a selector, render."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from evaluations import roles
from evaluations.access import role_required
from evaluations.forms import EndpointForm, KnowledgeUploadForm, RunForm, SuiteSettingsForm, SuiteUploadForm
from evaluations.importers import SourceFile, SuiteFormatError, SuiteValidationError
from evaluations.importers.sources import TOO_LARGE
from evaluations.models import Arm, Endpoint, Run, Split, Strategy, Suite
from evaluations.selectors import comparisons
from evaluations.selectors.audit import HISTORY_PER_PAGE, audit_rows, suite_events
from evaluations.selectors.knowledge import knowledge_totals, version_documents
from evaluations.selectors.reviews import with_reviews
from evaluations.selectors.runs import (
    recent_runs,
    results_by_pk,
    results_for_run,
    run_arms_with_summaries,
    run_live_counts,
    run_progress,
    run_rescoring,
)
from evaluations.selectors.schedules import schedule_rows
from evaluations.selectors.signoffs import signoff_panel
from evaluations.selectors.stalls import run_stall, runs_stalled
from evaluations.selectors.suites import suites_with_counts, version_cases, version_diff
from evaluations.services.endpoints import endpoint_create, params_warnings
from evaluations.services.knowledge import knowledge_import
from evaluations.services.runs import RunError, run_cancel, run_create, run_resume
from evaluations.services.scorings import RescoreError, run_rescore
from evaluations.services.suites import suite_import, suite_update_settings

OUTCOMES = [
    ("", "all"),
    ("pass", "passed"),
    ("fail", "failed"),
    ("error", "errors"),
    ("pending", "not scored yet"),
]


def _page(request: HttpRequest, qs, per_page: int = 50):
    return Paginator(qs, per_page).get_page(request.GET.get("page"))


@role_required(roles.READ)
@require_safe
def home(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "evaluations/home.html",
        {
            "runs": recent_runs(10),
            "suites": suites_with_counts()[:10],
            "endpoint_count": Endpoint.objects.count(),
        },
    )


@role_required(roles.READ)
@require_safe
def suite_list(request: HttpRequest) -> HttpResponse:
    return render(request, "evaluations/suite_list.html", {"page": _page(request, suites_with_counts())})


@role_required(roles.UPLOAD)
def suite_upload(request: HttpRequest) -> HttpResponse:
    errors: list[str] = []
    limit = settings.FTVP_MAX_UPLOAD_BYTES
    if request.method == "POST" and int(request.META.get("CONTENT_LENGTH") or 0) > limit + 64 * 1024:
        # Refused before Django reads the body, so an oversized upload never fills the disk.
        errors = [TOO_LARGE.format(limit=limit)]
        return render(
            request,
            "evaluations/suite_upload.html",
            {"form": SuiteUploadForm(), "errors": errors},
            status=413,
        )
    form = SuiteUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        files = [SourceFile(u.name, u.read()) for u in form.cleaned_data["file"]]
        try:
            version = suite_import(
                name=form.cleaned_data["name"],
                files=files,
                fmt=form.cleaned_data["format"] or None,
                test_fraction=form.cleaned_data["test_fraction"],
                task_type=form.cleaned_data["task_type"] or None,
                user=request.user,
            )
        except SuiteValidationError as exc:
            errors = [str(e) for e in exc.errors]
        except SuiteFormatError as exc:
            errors = [str(exc)]
        else:
            messages.success(
                request, f"Imported {version.cases.count()} cases as {version} ({version.source_format})."
            )
            for note in version.notes:
                messages.warning(request, note)
            return redirect("evaluations:suite-detail", pk=version.suite_id)
    status = 400 if request.method == "POST" else 200
    return render(request, "evaluations/suite_upload.html", {"form": form, "errors": errors}, status=status)


@role_required(roles.READ)
@require_safe
def suite_detail(request: HttpRequest, pk: int) -> HttpResponse:
    suite = get_object_or_404(Suite, pk=pk)
    return render(request, "evaluations/suite_detail.html", _suite_context(request, suite))


def _suite_context(request: HttpRequest, suite: Suite, **extra) -> dict:
    """The suite page's context: the version shown (`?version=N`, else the latest) with its cases and
    knowledge documents, what changed from the version before it, runs, findings, schedules, history."""
    versions = list(suite.versions.order_by("-number"))
    version = versions[0] if versions else None
    if request.GET.get("version", "").isdigit():
        version = get_object_or_404(suite.versions, number=int(request.GET["version"]))
    split = request.GET.get("split", "")
    query = request.GET.get("q", "").strip()
    cases = _page(request, version_cases(version, split=split, query=query)) if version else None
    previous = next((v for v in versions if version and v.number < version.number), None)
    history = Paginator(suite_events(suite.pk), HISTORY_PER_PAGE).get_page(request.GET.get("history_page"))
    knowledge = (
        Paginator(version_documents(version), 50).get_page(request.GET.get("knowledge_page"))
        if version
        else None
    )
    return {
        "suite": suite,
        "history_page": history,
        "history_rows": audit_rows(history.object_list),
        "versions": versions,
        "version": version,
        "latest": versions[0] if versions else None,
        "cases": cases,
        "split": split,
        "q": query,
        "splits": Split.choices,
        "runs": Run.objects.filter(suite_version__suite=suite)
        .select_related("suite_version")
        .order_by("-created_at")[:10],
        "diff": version_diff(previous, version) if previous else None,
        "open_findings": suite.findings.filter(acknowledged_at__isnull=True).order_by("-created_at")[:10],
        "schedules": schedule_rows(suite),
        "settings_form": SuiteSettingsForm(
            initial={f: getattr(suite, f) for f in SuiteSettingsForm.base_fields},
            may_set_policy=request.user.has_perm(roles.SET_BASELINE),
        ),
        "knowledge": knowledge,
        "knowledge_totals": knowledge_totals(version) if version else None,
        "knowledge_form": KnowledgeUploadForm(),
        "knowledge_errors": [],
        **extra,
    }


@role_required(roles.UPLOAD)
@require_POST
def suite_knowledge(request: HttpRequest, pk: int) -> HttpResponse:
    """The suite page's knowledge upload: the documents as the suite's next version, or the page again
    with what is wrong (nothing stored)."""
    suite = get_object_or_404(Suite, pk=pk)
    limit = settings.FTVP_MAX_UPLOAD_BYTES
    if int(request.META.get("CONTENT_LENGTH") or 0) > limit + 64 * 1024:
        # Refused before Django reads the body, so an oversized upload never fills the disk.
        context = _suite_context(request, suite, knowledge_errors=[TOO_LARGE.format(limit=limit)])
        return render(request, "evaluations/suite_detail.html", context, status=413)
    form = KnowledgeUploadForm(request.POST, request.FILES)
    errors: list[str] = []
    if form.is_valid():
        try:
            version = knowledge_import(
                suite=suite,
                files=[SourceFile(u.name, u.read()) for u in form.cleaned_data["file"]],
                replace=form.cleaned_data["replace"],
                user=request.user,
            )
        except SuiteValidationError as exc:
            errors = [str(e) for e in exc.errors]
        except SuiteFormatError as exc:
            errors = [str(exc)]
        else:
            totals = knowledge_totals(version)
            messages.success(
                request,
                f"Knowledge saved as {version}: {totals['documents']} documents, {totals['chunks']} chunks.",
            )
            return redirect(reverse("evaluations:suite-detail", args=[suite.pk]) + "#knowledge")
    else:
        errors = [f"{' '.join(errs)}" for errs in form.errors.values()]
    context = _suite_context(request, suite, knowledge_form=form, knowledge_errors=errors)
    return render(request, "evaluations/suite_detail.html", context, status=400)


@role_required(roles.EDIT_SUITE)
@require_POST
def suite_settings(request: HttpRequest, pk: int) -> HttpResponse:
    suite = get_object_or_404(Suite, pk=pk)
    form = SuiteSettingsForm(
        request.POST,
        policy=suite.approvals_required,
        may_set_policy=request.user.has_perm(roles.SET_BASELINE),
    )
    if form.is_valid():
        try:
            suite_update_settings(suite=suite, **form.cleaned_data, user=request.user)
        except ValidationError as exc:  # the model's own checks (e.g. a value its column cannot hold)
            errors = exc.message_dict if hasattr(exc, "error_dict") else {"settings": exc.messages}
            problems = "; ".join(f"{field}: {' '.join(errs)}" for field, errs in errors.items())
            messages.error(request, f"Settings not saved: {problems}")
        else:
            messages.success(request, f"Settings of {suite.name} saved.")
    else:
        problems = "; ".join(f"{field}: {' '.join(errs)}" for field, errs in form.errors.items())
        messages.error(request, f"Settings not saved: {problems}")
    return redirect("evaluations:suite-detail", pk=suite.pk)


@role_required(roles.READ, post=(roles.ADD_ENDPOINT, roles.ENDPOINT_CONNECTION))
def endpoint_list(request: HttpRequest) -> HttpResponse:
    form = EndpointForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            endpoint = endpoint_create(**form.cleaned_data, user=request.user)
        except ValidationError as exc:
            for field, errs in exc.message_dict.items():
                base, _, rest = field.partition(".")  # params.temperature: the params field
                for err in errs:
                    form.add_error(base if base in form.fields else None, f"{rest}: {err}" if rest else err)
        except IntegrityError:
            form.add_error("name", "an endpoint with this name exists already")
        else:
            messages.success(request, f"Endpoint {endpoint.name} added.")
            for warning in params_warnings(endpoint.params, endpoint.provider):
                messages.warning(request, f"Endpoint {endpoint.name}: {warning}.")
            return redirect("evaluations:endpoint-list")
    for name in ("api_key_env", "base_url"):
        if form.has_error(name):
            # What was typed there may be a pasted key: never echo it back into the page.
            form.data = form.data.copy()
            form.data[form.add_prefix(name)] = ""
    return render(
        request,
        "evaluations/endpoint_list.html",
        {"endpoints": Endpoint.objects.select_related("base_endpoint").order_by("name"), "form": form},
        status=400 if request.method == "POST" else 200,
    )


@role_required(roles.READ)
@require_safe
def run_list(request: HttpRequest) -> HttpResponse:
    qs = Run.objects.select_related("suite_version__suite").order_by("-created_at", "-id")
    page = _page(request, qs)
    page.object_list = list(page.object_list)
    stalled = runs_stalled(page.object_list)
    for run in page.object_list:
        run.stall = stalled.get(run.pk)
    return render(request, "evaluations/run_list.html", {"page": page})


@role_required(roles.RUN)
def run_new(request: HttpRequest) -> HttpResponse:
    initial = {}
    if request.GET.get("suite_version"):
        initial["suite_version"] = request.GET["suite_version"]
    if request.GET.get("split") in ("test", "train"):
        initial["split"] = request.GET["split"]
    form = RunForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            run = run_create(
                suite_version=form.cleaned_data["suite_version"],
                arms=form.cleaned_data["arms"],
                repeats=form.cleaned_data["repeats"],
                user=request.user,
                split=form.cleaned_data.get("split") or "test",
            )
        except RunError as exc:
            form.add_error(None, str(exc))
        else:
            return redirect("evaluations:run-detail", pk=run.pk)
    return render(
        request,
        "evaluations/run_new.html",
        {
            "form": form,
            "has_endpoints": Endpoint.objects.exists(),
            "has_strategies": Strategy.objects.exists(),
        },
        status=400 if request.method == "POST" else 200,
    )


def _run_context(run: Run) -> dict:
    arms = run_arms_with_summaries(run)
    chart = {
        "labels": [arm.label for arm, _ in arms],
        "mean": [s.get("mean_score") for _, s in arms],
        "low": [(s.get("score_ci") or [None, None])[0] for _, s in arms],
        "high": [(s.get("score_ci") or [None, None])[1] for _, s in arms],
        "pass_rate": [s.get("pass_rate") for _, s in arms],
        "target": run.suite_version.suite.quality_target,
    }
    retrieval = [(arm, s["retrieval"]) for arm, s in arms if s.get("retrieval")]
    return {
        "run": run,
        "progress": run_progress(run),
        "arms": arms,
        "arms_retrieval": retrieval,
        "arms_retrieval_gold": any(r.get("cases_with_gold") for _, r in retrieval),
        "arms_pairwise": [
            (arm, against, p) for arm, s in arms for against, p in sorted((s.get("pairwise") or {}).items())
        ],
        "chart": chart,
        "scorings": [
            (sc, [(arm.label, sc.summaries.get(str(arm.pk), {}).get("mean_score")) for arm, _ in arms])
            for sc in run.scorings.order_by("-number")
        ],
        "rescoring": run_rescoring(run),
        "confusions": [
            {
                "id": f"confusion-{arm.pk}",
                "label": arm.label,
                **s["confusion"],
                "per_class": s.get("per_class") or {},
            }
            for arm, s in arms
            if s.get("confusion")
        ],
        "consistency": [(arm, s["consistency"]) for arm, s in arms if s.get("consistency")],
        "stall": run_stall(run),
    }


@role_required(roles.READ)
@require_safe
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(Run.objects.select_related("suite_version__suite"), pk=pk)
    context = _run_context(run) | signoff_panel(run, request.user)
    return render(request, "evaluations/run_detail.html", context)


@role_required(roles.READ)
@require_safe
def run_live(request: HttpRequest, pk: int) -> HttpResponse:
    """The live part of the run page (progress, summary, chart data), polled by htmx while running."""
    run = get_object_or_404(Run.objects.select_related("suite_version__suite"), pk=pk)
    return render(request, "evaluations/_run_live.html", _run_context(run))


@role_required(roles.READ)
@require_safe
def run_results(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(Run.objects.select_related("suite_version__suite"), pk=pk)
    arm_id = request.GET.get("arm", "")
    outcome = request.GET.get("outcome", "")
    query = request.GET.get("q", "").strip()
    qs = results_for_run(run, arm_id=int(arm_id) if arm_id.isdigit() else None, outcome=outcome, query=query)
    # The page's ids first (a sort of narrow rows), then its 25 rows in full: sorting the run's whole
    # rows (prompts, outputs, scores) to keep 25 spilled to disk on runs of thousands of results.
    paginator = Paginator(qs.values_list("pk", flat=True), 25)
    if not (arm_id or outcome or query):  # all the run's results: the count the live part keeps
        paginator.count = run_live_counts(run)["n"]
    page = paginator.get_page(request.GET.get("page"))
    page.object_list = with_reviews(results_by_pk(list(page.object_list)))  # + verdicts
    context = {
        "run": run,
        "page": page,
        "arm_filter": arm_id,
        "outcomes": OUTCOMES,
        "outcome": outcome,
        "q": query,
        "arm_choices": run.arms.select_related("endpoint", "strategy").order_by("position"),
    }
    template = (
        "evaluations/_results_table.html"
        if request.headers.get("HX-Request")
        else "evaluations/run_results.html"
    )
    return render(request, template, context)


@role_required(roles.RUN)
@require_POST
def run_cancel_view(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(Run, pk=pk)
    if run_cancel(run_id=run.pk, user=request.user):
        messages.info(request, f"Run #{run.pk} cancelled.")
    else:
        messages.warning(request, f"Run #{run.pk} had already finished.")
    return redirect("evaluations:run-detail", pk=run.pk)


@role_required(roles.RUN)
@require_POST
def run_resume_view(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(Run, pk=pk)
    try:
        sent = run_resume(run_id=run.pk, actor=request.user)
    except RunError as exc:
        messages.warning(request, f"Not resumed: {exc}.")
    else:
        steps = sum(sent.values())
        messages.info(
            request,
            f"Run #{run.pk} resumed: {steps} step{'s' if steps != 1 else ''} sent to the workers. "
            "A worker must be running to take them (celery -A workers worker -Q llm,scoring).",
        )
    return redirect("evaluations:run-detail", pk=run.pk)


COMPARE_VIEWS = [("", "all shared cases"), ("flipped", "pass → fail"), ("drops", "largest drops"),
                 ("disagree", "samples disagree")]  # fmt: skip


@role_required(roles.READ)
@require_safe
def compare_view(request: HttpRequest) -> HttpResponse:
    """Two or more arms side by side; every other arm is tested against the first (the baseline)."""
    ids = [int(x) for x in request.GET.getlist("arm") if x.isdigit()]
    view = request.GET.get("view", "")
    context: dict = {"views": COMPARE_VIEWS, "view": view, "arm_ids": ids}
    try:
        result = comparisons.compare(list(dict.fromkeys(ids)))
    except comparisons.CompareError as exc:
        context["error"] = str(exc)
        if ids:
            first = Arm.objects.filter(pk=ids[0]).select_related("run__suite_version").first()
            if first:
                context["candidates"] = comparisons.arms_of_suite(first.run.suite_version.suite_id)
        return render(request, "evaluations/compare.html", context, status=400 if ids else 200)
    rows = comparisons.filter_rows(result["rows"], view)
    context.update(result)
    context["page"] = _page(request, rows, 25)
    comparisons.add_cases(context["page"].object_list, result["arms"][0])  # the page's cases only
    comparisons.add_diffs(context["page"].object_list)
    context["candidates"] = comparisons.arms_of_suite(result["arms"][0].run.suite_version.suite_id)
    return render(request, "evaluations/compare.html", context)


@role_required(roles.RUN)
@require_POST
def run_rescore_view(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(Run, pk=pk)
    try:
        scoring = run_rescore(run_id=run.pk, user=request.user)
    except RescoreError as exc:
        messages.warning(request, str(exc))
    else:
        messages.info(
            request,
            f"Re-scoring run #{run.pk} with the suite's current assertions (scoring {scoring.number}).",
        )
    return redirect("evaluations:run-detail", pk=run.pk)
