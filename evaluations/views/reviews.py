"""Human review of a run's results: the queue (one result at a time), the run page's review card
(progress, agreement, suggested threshold), applying the threshold, and the reviewed outputs as
fine-tuning JSONL."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from evaluations import roles
from evaluations.access import role_required
from evaluations.models import Result, Run, Verdict
from evaluations.selectors import exports
from evaluations.selectors import reviews as selectors_reviews
from evaluations.services.reviews import review_save, reviews_accept_passing, suite_threshold_apply
from evaluations.services.traffic_suite import TrafficSuiteError, captured_answers_apply
from evaluations.views.exports import _download, _stem, arm_param

SHORTCUTS = [
    ("c", "correct"),
    ("x", "incorrect"),
    ("e", "edit the corrected output"),
    ("m", "write a comment"),
    ("s / j", "skip to the next"),
    ("Ctrl+Enter", "save from a text box"),
    ("Esc", "leave a text box"),
]


def _run(pk: int) -> Run:
    return get_object_or_404(Run.objects.select_related("suite_version__suite"), pk=pk)


def _item_url(run: Run, item) -> str:
    if item is None:
        return reverse("evaluations:run-review", args=[run.pk])
    return reverse("evaluations:run-review-result", args=[run.pk, item.result_id])


@role_required(roles.REVIEW)
@require_safe
def review_next(request: HttpRequest, pk: int) -> HttpResponse:
    """The first result left to review, or "nothing left to review" with the counts."""
    run = _run(pk)
    queue = selectors_reviews.review_queue(run)
    item = queue.next_after(None)
    if item is not None:
        return redirect(_item_url(run, item))
    return render(request, "evaluations/review_done.html", {"run": run, "queue": queue})


@role_required(roles.REVIEW)
@require_http_methods(["GET", "HEAD", "POST"])
def review_result(request: HttpRequest, pk: int, result_pk: int) -> HttpResponse:
    """One result with the form; a POST saves the user's review and moves on in queue order."""
    run = _run(pk)
    result = get_object_or_404(
        Result.objects.select_related("case", "arm__endpoint", "arm__strategy"), pk=result_pk, arm__run=run
    )
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        try:
            review_save(
                result=result,
                reviewer=request.user,
                verdict=request.POST.get("verdict", ""),
                corrected_output=request.POST.get("corrected_output", ""),
                comment=request.POST.get("comment", ""),
            )
        except ValidationError as exc:
            errors = exc.message_dict
        else:
            queue = selectors_reviews.review_queue(run)
            return redirect(_item_url(run, queue.next_after(result.pk)))
    queue = selectors_reviews.review_queue(run)
    reviews = selectors_reviews.result_reviews(result)
    mine = next((r for r in reviews if r.reviewer_id == request.user.pk), None)
    following = queue.next_after(result.pk)
    context = {
        "run": run,
        "result": result,
        "item": queue.by_result.get(result.pk),
        "queue": queue,
        "position": queue.position(result.pk),
        "reviews": reviews,
        "mine": mine,
        "errors": errors,
        "skip_url": _item_url(run, following) if following and following.result_id != result.pk else "",
        "verdicts": Verdict,
        "input_messages": result.case.input if isinstance(result.case.input, list) else None,
        "corrected_output": request.POST.get("corrected_output")
        if errors
        else (mine.corrected_output if mine and mine.corrected_output else result.output),
        "comment": request.POST.get("comment") if errors else (mine.comment if mine else ""),
        "shortcuts": SHORTCUTS,
        "threshold": run.suite_version.suite.pass_threshold,
    }
    return render(request, "evaluations/review.html", context, status=400 if errors else 200)


@role_required(roles.READ)
@require_safe
def review_summary(request: HttpRequest, pk: int) -> HttpResponse:
    """The run page's review card (loaded by htmx)."""
    run = _run(pk)
    summary = selectors_reviews.run_review_summary(run)
    arms = run.arms.select_related("endpoint", "strategy").order_by("position")
    return render(request, "evaluations/_run_review.html", {"run": run, "summary": summary, "arms": arms})


@role_required(roles.REVIEW)
@require_POST
def review_accept_passing(request: HttpRequest, pk: int) -> HttpResponse:
    """Accept every result of the run that passed scoring and has no verdict yet."""
    run = _run(pk)
    arm = request.POST.get("arm", "").strip()
    try:
        if arm and not arm.isdigit():
            raise ValidationError({"arm": f"{arm[:40]!r} is not an arm id"})
        accepted = reviews_accept_passing(run=run, reviewer=request.user, arm_id=int(arm) if arm else None)
    except ValidationError as exc:
        messages.error(request, "Nothing accepted: " + " ".join(exc.messages))
    else:
        messages.success(
            request,
            f"{accepted} passing answer{'s' if accepted != 1 else ''} accepted as correct."
            if accepted
            else "No passing answer was left without a verdict.",
        )
    return redirect("evaluations:run-detail", pk=run.pk)


@role_required(roles.UPLOAD)
@require_POST
def captured_answers_apply_view(request: HttpRequest, pk: int) -> HttpResponse:
    """A captured run's reviewed answers as the expected outputs of the suite's next version."""
    run = _run(pk)
    try:
        version = captured_answers_apply(version=run.suite_version, user=request.user)
    except TrafficSuiteError as exc:
        messages.error(request, f"Nothing applied: {exc}")
        return redirect("evaluations:run-detail", pk=run.pk)
    messages.success(
        request, f"{version} made: the reviewed captured answers are its cases' expected outputs."
    )
    return redirect("evaluations:suite-detail", pk=version.suite_id)


@role_required(roles.EDIT_SUITE)
@require_POST
def review_threshold_apply(request: HttpRequest, pk: int) -> HttpResponse:
    """Set the suite's pass threshold to the one suggested by the reviews of this run."""
    run = _run(pk)
    suite = run.suite_version.suite
    before = suite.pass_threshold
    try:
        suite = suite_threshold_apply(
            suite=suite, threshold=request.POST.get("threshold", ""), user=request.user
        )
    except ValidationError as exc:
        messages.error(request, "Threshold not applied: " + " ".join(exc.messages))
        return redirect("evaluations:run-detail", pk=run.pk)
    if suite.pass_threshold == before:
        messages.info(request, f"The pass threshold of {suite.name} already is {before:g}.")
    else:
        messages.success(
            request,
            f"The pass threshold of {suite.name} is now {suite.pass_threshold:g} (was {before:g}). "
            "Results keep their pass/fail until scored again: re-score this run to apply it.",
        )
    return redirect("evaluations:run-detail", pk=run.pk)


@role_required(roles.READ)
@require_safe
def run_export_reviewed(request: HttpRequest, pk: int) -> StreamingHttpResponse:
    """The reviewed outputs (correct as they are, corrected in place of the model's) as OpenAI chat
    fine-tuning JSONL; ?system=1 puts first the system message(s) the model was sent; ?arm=<id> one arm."""
    run = _run(pk)
    system = request.GET.get("system", "0").strip().lower() in ("1", "true", "yes", "on")
    arm_id = arm_param(request, run)
    suffix = f"-arm{arm_id}" if arm_id is not None else ""
    if system:
        suffix += "-system"
    return _download(
        exports.finetune_lines(exports.reviewed_pairs(run, system=system, arm_id=arm_id)),
        "application/jsonl; charset=utf-8",
        f"{_stem(run)}{suffix}-reviewed.jsonl",
    )
