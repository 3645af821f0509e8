"""Downloads of a run: its results as CSV or JSONL, its passing outputs as fine-tuning JSONL.

Streamed: the rows are read and written a chunk at a time (see evaluations/selectors/exports.py), so a run of
any size downloads with bounded memory.
"""

from __future__ import annotations

from django.http import Http404, HttpRequest, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_safe

from evaluations import roles
from evaluations.access import role_required
from evaluations.models import Run
from evaluations.selectors import exports


def _run(pk: int) -> Run:
    return get_object_or_404(Run.objects.select_related("suite_version__suite"), pk=pk)


def _download(lines, content_type: str, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(lines, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


def arm_param(request: HttpRequest, run: Run) -> int | None:
    """The `?arm=<id>` of a download: None when not given; Http404 when it is not an arm of `run`."""
    arm = request.GET.get("arm", "").strip()
    if not arm:
        return None
    if not arm.isdigit() or not run.arms.filter(pk=int(arm)).exists():
        raise Http404(f"No arm #{arm} in run #{run.pk}: its page lists the arms.")
    return int(arm)


def _stem(run: Run) -> str:
    version = run.suite_version
    return f"{exports.filename_part(version.suite.name)}-v{version.number}-run{run.pk}"


@role_required(roles.READ)
@require_safe
def run_export_csv(request: HttpRequest, pk: int) -> StreamingHttpResponse:
    run = _run(pk)
    return _download(
        exports.csv_lines(exports.run_records(run)),
        "text/csv; charset=utf-8",
        f"{_stem(run)}-results.csv",
    )


@role_required(roles.READ)
@require_safe
def run_export_jsonl(request: HttpRequest, pk: int) -> StreamingHttpResponse:
    run = _run(pk)
    return _download(
        exports.jsonl_lines(exports.run_records(run)),
        "application/jsonl; charset=utf-8",
        f"{_stem(run)}-results.jsonl",
    )


@role_required(roles.READ)
@require_safe
def run_export_finetune(request: HttpRequest, pk: int) -> StreamingHttpResponse:
    """The passing outputs (optionally of one arm: ?arm=<id>) as OpenAI chat fine-tuning JSONL."""
    run = _run(pk)
    arm_id = arm_param(request, run)
    suffix = f"-arm{arm_id}" if arm_id is not None else ""
    return _download(
        exports.finetune_lines(exports.passing_pairs(run, arm_id=arm_id)),
        "application/jsonl; charset=utf-8",
        f"{_stem(run)}{suffix}-passing.jsonl",
    )
