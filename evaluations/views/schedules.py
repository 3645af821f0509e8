"""Schedules of a suite's runs: create, edit, pause or resume, delete. Listed on the suite page."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from evaluations import roles
from evaluations.access import role_required
from evaluations.cron import describe
from evaluations.forms import ScheduleForm
from evaluations.models import Endpoint, Schedule, Suite
from evaluations.selectors.schedules import next_fire
from evaluations.services.schedules import (
    ScheduleError,
    schedule_create,
    schedule_delete,
    schedule_update,
)


def _suite_schedules_url(suite: Suite) -> str:
    return reverse("evaluations:suite-detail", args=[suite.pk]) + "#schedules"


def _initial(schedule: Schedule) -> dict:
    return {
        "name": schedule.name,
        "arms": [f"{a.endpoint_id}:{a.strategy_id}" for a in schedule.arms.all()],
        "suite_version": schedule.suite_version_id,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "repeats": schedule.repeats,
        "enabled": schedule.enabled,
    }


def _schedule_form(request: HttpRequest, suite: Suite, schedule: Schedule | None) -> HttpResponse:
    form = ScheduleForm(request.POST or None, suite=suite, initial=_initial(schedule) if schedule else None)
    if request.method == "POST" and form.is_valid():
        try:
            if schedule is None:
                saved = schedule_create(suite=suite, user=request.user, **form.cleaned_data)
            else:
                saved = schedule_update(schedule=schedule, **form.cleaned_data, user=request.user)
        except ScheduleError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            when = describe(saved.cron)
            state = "" if saved.enabled else " It is paused."
            messages.success(request, f"Schedule {saved.name} saved: {when} ({saved.timezone}).{state}")
            return redirect(_suite_schedules_url(suite))
    return render(
        request,
        "evaluations/schedule_form.html",
        {"form": form, "suite": suite, "schedule": schedule, "has_endpoints": Endpoint.objects.exists()},
        status=400 if request.method == "POST" else 200,
    )


@role_required(roles.SCHEDULE)
def schedule_new(request: HttpRequest, pk: int) -> HttpResponse:
    return _schedule_form(request, get_object_or_404(Suite, pk=pk), None)


@role_required(roles.SCHEDULE)
def schedule_edit(request: HttpRequest, pk: int) -> HttpResponse:
    schedule = get_object_or_404(Schedule.objects.select_related("suite"), pk=pk)
    return _schedule_form(request, schedule.suite, schedule)


@role_required(roles.SCHEDULE)
@require_POST
def schedule_toggle(request: HttpRequest, pk: int) -> HttpResponse:
    schedule = get_object_or_404(Schedule.objects.select_related("suite"), pk=pk)
    try:
        schedule_update(schedule=schedule, enabled=not schedule.enabled, user=request.user)
    except ScheduleError as exc:
        messages.error(request, f"Schedule {schedule.name} not changed: {exc}")
    else:
        if schedule.enabled:
            upcoming = next_fire(schedule)
            when = f"; next run {upcoming:%Y-%m-%d %H:%M} {schedule.timezone}" if upcoming else ""
            messages.success(request, f"Schedule {schedule.name} is on{when}.")
        else:
            messages.success(
                request, f"Schedule {schedule.name} is paused; no runs start until it is on again."
            )
    return redirect(_suite_schedules_url(schedule.suite))


@role_required(roles.SCHEDULE)
def schedule_delete_view(request: HttpRequest, pk: int) -> HttpResponse:
    schedule = get_object_or_404(Schedule.objects.select_related("suite"), pk=pk)
    suite = schedule.suite
    if request.method == "POST":
        schedule_delete(schedule=schedule, user=request.user)
        messages.success(request, f"Schedule {schedule.name} deleted; its runs are kept.")
        return redirect(_suite_schedules_url(suite))
    return render(
        request,
        "evaluations/schedule_confirm_delete.html",
        {
            "schedule": schedule,
            "suite": suite,
            "runs": schedule.runs.count(),
            "when": describe(schedule.cron),
        },
    )
