"""Schedule pages: the suite page's Schedules section, create, edit, turn on and off, delete."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from evaluations.models import Run, RunStatus, Schedule
from evaluations.services.schedules import schedule_create, schedule_fire
from tests.factories import CaseFactory, EndpointFactory, SuiteVersionFactory, strategy


@pytest.fixture
def version(db):
    version = SuiteVersionFactory(suite__name="tickets")
    CaseFactory(version=version, key="k0", position=0)
    return version


@pytest.fixture
def endpoint(db):
    return EndpointFactory(name="gpt-x")


def _arm_value(endpoint, name: str) -> str:
    return f"{endpoint.pk}:{strategy(name).pk}"


def _post_data(endpoint, **overrides) -> dict:
    data = {
        "name": "nightly",
        "arms": [_arm_value(endpoint, "zero-shot"), _arm_value(endpoint, "cot")],
        "suite_version": "",
        "cron": "0 2 * * *",
        "timezone": "Europe/Berlin",
        "repeats": "1",
        "enabled": "on",
    }
    data.update(overrides)
    return data


@pytest.mark.parametrize(
    ("name", "method"),
    [
        ("schedule-new", "get"),
        ("schedule-edit", "get"),
        ("schedule-toggle", "post"),
        ("schedule-delete", "post"),
    ],
)
def test_every_schedule_page_needs_a_login(client, version, endpoint, name, method):
    schedule = schedule_create(suite=version.suite, name="n", arms=[(endpoint, strategy("plain"))])
    url = reverse(f"evaluations:{name}", args=[version.suite.pk if name == "schedule-new" else schedule.pk])
    response = getattr(client, method)(url)
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    schedule.refresh_from_db()
    assert schedule.enabled  # nothing changed


def test_the_new_schedule_form_defaults_to_nightly_at_two_on_the_latest_version(
    auth_client, version, endpoint
):
    response = auth_client.get(reverse("evaluations:schedule-new", args=[version.suite.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'value="0 2 * * *"' in html and "the latest version when it runs" in html
    assert f'value="{_arm_value(endpoint, "zero-shot")}"' in html
    assert "gpt-x · zero-shot" in html


def test_creating_a_schedule_from_the_form(auth_client, version, endpoint, user):
    response = auth_client.post(
        reverse("evaluations:schedule-new", args=[version.suite.pk]), _post_data(endpoint)
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("evaluations:suite-detail", args=[version.suite.pk]) + "#schedules"
    schedule = Schedule.objects.get()
    assert (schedule.name, schedule.cron, schedule.timezone, schedule.created_by) == (
        "nightly", "0 2 * * *", "Europe/Berlin", user,
    )  # fmt: skip
    assert [a.strategy.name for a in schedule.arms.all()] == ["zero-shot", "cot"]  # ladder order
    assert PeriodicTask.objects.get(pk=schedule.periodic_task_id).enabled


def test_a_bad_cron_is_shown_on_its_field_and_nothing_is_saved(auth_client, version, endpoint):
    response = auth_client.post(
        reverse("evaluations:schedule-new", args=[version.suite.pk]), _post_data(endpoint, cron="0 25 * * *")
    )
    assert response.status_code == 400
    form = response.context["form"]
    assert "hour field '25' is not valid" in " ".join(form.errors["cron"])
    assert not Schedule.objects.exists() and not PeriodicTask.objects.exists()


def test_no_arms_and_a_pinned_version_of_another_suite_are_refused(auth_client, version, endpoint):
    url = reverse("evaluations:schedule-new", args=[version.suite.pk])
    response = auth_client.post(url, _post_data(endpoint, arms=[]))
    assert response.status_code == 400 and "arms" in response.context["form"].errors
    other = SuiteVersionFactory()
    response = auth_client.post(url, _post_data(endpoint, suite_version=str(other.pk)))
    assert response.status_code == 400 and "suite_version" in response.context["form"].errors
    assert not Schedule.objects.exists()


def test_the_suite_page_lists_schedules_with_next_and_last_run(auth_client, version, endpoint, task_queue):
    nightly = schedule_create(
        suite=version.suite, name="nightly", arms=[(endpoint, strategy("plain"))], timezone="Europe/Berlin"
    )
    schedule_create(
        suite=version.suite,
        name="weekly",
        arms=[(endpoint, strategy("cot"))],
        cron="0 6 * * 1",
        enabled=False,
    )
    run = schedule_fire(schedule_id=nightly.pk, fired_at=timezone.now())
    response = auth_client.get(reverse("evaluations:suite-detail", args=[version.suite.pk]))
    html = response.content.decode()
    assert 'id="schedules"' in html
    assert "At 02:00" in html and "Europe/Berlin" in html and "gpt-x · plain" in html
    assert f'href="{reverse("evaluations:run-detail", args=[run.pk])}"' in html
    # The next 02:00 in Berlin, shown in Berlin time.
    berlin = timezone.now().astimezone(ZoneInfo("Europe/Berlin"))
    upcoming = berlin.replace(hour=2, minute=0, second=0, microsecond=0)
    if upcoming <= berlin:
        upcoming += timedelta(days=1)
    assert upcoming.strftime("%Y-%m-%d 02:00") in html
    assert "At 06:00, only on Monday" in html and "paused" in html
    assert reverse("evaluations:schedule-new", args=[version.suite.pk]) in html


def test_a_suite_without_schedules_says_so(auth_client, version):
    html = auth_client.get(reverse("evaluations:suite-detail", args=[version.suite.pk])).content.decode()
    assert "No schedules" in html


def test_editing_a_schedule_changes_it_and_its_beat_entry(auth_client, version, endpoint):
    schedule = schedule_create(suite=version.suite, name="nightly", arms=[(endpoint, strategy("plain"))])
    url = reverse("evaluations:schedule-edit", args=[schedule.pk])
    page = auth_client.get(url).content.decode()
    assert 'value="nightly"' in page and "checked" in page
    response = auth_client.post(
        url, _post_data(endpoint, name="twice daily", cron="0 3,15 * * *", suite_version=str(version.pk))
    )
    assert response.status_code == 302
    schedule.refresh_from_db()
    assert (schedule.name, schedule.cron, schedule.suite_version) == ("twice daily", "0 3,15 * * *", version)
    assert schedule.arms.count() == 2
    task = PeriodicTask.objects.get(pk=schedule.periodic_task_id)
    assert task.crontab.hour == "3,15" and str(task.crontab.timezone) == "Europe/Berlin"


def test_turning_a_schedule_off_and_on(auth_client, version, endpoint):
    schedule = schedule_create(suite=version.suite, name="nightly", arms=[(endpoint, strategy("plain"))])
    url = reverse("evaluations:schedule-toggle", args=[schedule.pk])
    assert auth_client.get(url).status_code == 405
    auth_client.post(url)
    schedule.refresh_from_db()
    assert not schedule.enabled and not PeriodicTask.objects.get(pk=schedule.periodic_task_id).enabled
    response = auth_client.post(url, follow=True)
    schedule.refresh_from_db()
    assert schedule.enabled and PeriodicTask.objects.get(pk=schedule.periodic_task_id).enabled
    assert "is on; next run" in response.content.decode()


def test_deleting_asks_first_then_removes_the_schedule_and_keeps_its_runs(
    auth_client, version, endpoint, task_queue
):
    schedule = schedule_create(suite=version.suite, name="nightly", arms=[(endpoint, strategy("plain"))])
    run = schedule_fire(schedule_id=schedule.pk, fired_at=datetime(2030, 1, 1, 2, 0, 1, tzinfo=UTC))
    Run.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED)
    url = reverse("evaluations:schedule-delete", args=[schedule.pk])
    page = auth_client.get(url)
    assert page.status_code == 200 and "its 1 run stay" in page.content.decode()
    assert Schedule.objects.exists()
    response = auth_client.post(url)
    assert response.status_code == 302
    assert not Schedule.objects.exists() and not PeriodicTask.objects.exists()
    assert Run.objects.filter(pk=run.pk).exists()


def test_schedule_names_are_escaped(auth_client, version, endpoint):
    schedule_create(
        suite=version.suite, name="<script>alert(1)</script>", arms=[(endpoint, strategy("plain"))]
    )
    html = auth_client.get(reverse("evaluations:suite-detail", args=[version.suite.pk])).content.decode()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
