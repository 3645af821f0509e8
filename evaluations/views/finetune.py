"""Fine-tuning jobs: start one, watch its loss curve, cancel it; export a train split for hosted models."""

from __future__ import annotations

import json

from django.contrib import messages
from django.http import FileResponse, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST, require_safe

from evaluations import roles
from evaluations.access import role_required
from evaluations.forms import FineTuneForm
from evaluations.models import FineTuneJob, Suite
from evaluations.services.finetune import (
    TRAINING_FILE,
    FineTuneError,
    adapter_dir,
    finetune_cancel,
    finetune_create,
    finetune_examples,
)
from evaluations.services.finetune import finetune_training_file as training_file_bytes
from evaluations.views.pages import _page


@role_required(roles.READ, post=roles.FINETUNE)
def finetune_list(request: HttpRequest) -> HttpResponse:
    initial = {}
    if request.GET.get("suite_version", "").isdigit():
        initial["suite_version"] = int(request.GET["suite_version"])
    if request.GET.get("source"):
        initial["source"] = request.GET["source"][:500]
    form = FineTuneForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            job = finetune_create(
                suite_version=form.cleaned_data["suite_version"],
                base_endpoint=form.cleaned_data["base_endpoint"],
                hyperparameters=form.hyperparameters(),
                user=request.user,
                backend=form.cleaned_data["backend"],
                source=form.cleaned_data["source"],
            )
        except FineTuneError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Fine-tune #{job.pk} queued on {job.examples} training examples.")
            return redirect("evaluations:finetune-detail", pk=job.pk)
    jobs = FineTuneJob.objects.select_related("suite_version__suite", "base_endpoint", "endpoint")
    return render(
        request,
        "evaluations/finetune_list.html",
        {"form": form, "page": _page(request, jobs, 25)},
        status=400 if request.method == "POST" else 200,
    )


def _job(pk: int) -> FineTuneJob:
    return get_object_or_404(
        FineTuneJob.objects.select_related(
            "suite_version__suite", "base_endpoint", "endpoint", "run", "teacher_endpoint", "teacher_strategy"
        ),
        pk=pk,
    )


def _context(job: FineTuneJob) -> dict:
    return {
        "job": job,
        "source": job.source or {"spec": "train"},
        "trained_file": bool(job.adapter) and (adapter_dir(job) / TRAINING_FILE).is_file(),
        "chart": {"losses": job.losses, "total_steps": job.total_steps},
        "events": list(reversed((job.events or [])[-20:])),  # a hosted job's provider events, newest first
    }


@role_required(roles.READ)
@require_safe
def finetune_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return render(request, "evaluations/finetune_detail.html", _context(_job(pk)))


@role_required(roles.READ)
@require_safe
def finetune_live(request: HttpRequest, pk: int) -> HttpResponse:
    return render(request, "evaluations/_finetune_live.html", _context(_job(pk)))


@role_required(roles.FINETUNE)
@require_POST
def finetune_cancel_view(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(FineTuneJob, pk=pk)
    if finetune_cancel(job_id=job.pk, user=request.user):
        messages.info(request, f"Fine-tune #{job.pk} cancelled; its worker stops at the next step.")
    else:
        messages.warning(request, f"Fine-tune #{job.pk} had already finished.")
    return redirect("evaluations:finetune-detail", pk=job.pk)


@role_required(roles.READ)
@require_safe
def finetune_training_file(request: HttpRequest, pk: int) -> HttpResponse:
    """The job's training examples as chat JSONL: for a local job that started training, the file its
    adapter learnt from; else the examples its source gives now (a hosted job's training and
    validation files together)."""
    job = _job(pk)
    path = adapter_dir(job) / TRAINING_FILE if job.adapter else None
    filename = f"finetune-{job.pk}-training.jsonl"
    if job.backend == "local" and path is not None and path.is_file():
        response = FileResponse(path.open("rb"), content_type="application/jsonl; charset=utf-8")
    else:
        try:
            data = training_file_bytes(job)
        except FineTuneError as exc:
            return HttpResponse(
                f"The training file cannot be made: {exc}", status=404, content_type="text/plain"
            )
        response = HttpResponse(data, content_type="application/jsonl; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@role_required(roles.READ)
@require_safe
def suite_finetune_export(request: HttpRequest, pk: int) -> HttpResponse:
    """The latest version's train split as OpenAI chat fine-tuning JSONL ({"messages": [...]})."""
    suite = get_object_or_404(Suite, pk=pk)
    version = suite.latest_version()
    if version is None:
        return HttpResponse("This suite has no versions.", status=404, content_type="text/plain")
    if request.GET.get("version", "").isdigit():
        version = get_object_or_404(suite.versions, number=int(request.GET["version"]))

    def lines():
        for messages_, answer in finetune_examples(version):
            record = {"messages": [*messages_, {"role": "assistant", "content": answer}]}
            yield json.dumps(record, ensure_ascii=False) + "\n"

    response = StreamingHttpResponse(lines(), content_type="application/jsonl; charset=utf-8")
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in suite.name)[:80] or "suite"
    response["Content-Disposition"] = f'attachment; filename="{safe}-v{version.number}-train.jsonl"'
    return response
