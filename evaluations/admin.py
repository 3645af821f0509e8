"""The admin site, for what the pages do not cover. What a team relies on is changed by the services,
which check it and record an AuditEvent: here those fields are read-only (a suite's settings and
baseline, an endpoint's connection and prices, a run's sign-off), endpoints are registered on the
Endpoints page or the API, and the audit log, reviews, sign-offs and approvals are not registered at
all. Users' roles and flags changed here are recorded by signals (evaluations/receivers.py)."""

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from evaluations import models
from evaluations.services.endpoints import AUDITED as ENDPOINT_AUDITED
from evaluations.services.suites import SETTINGS_FIELDS, UPLOAD_FIELDS
from evaluations.services.user_audit import user_roles_change

# A suite's decision profile (services/suites.py suite_update_profile, recorded as "suite.profile").
SUITE_PROFILE_FIELDS = (
    "horizon_months", "retrains_per_year", "examples_available", "training_price_per_1m",
    "training_epochs", "urgency", "monthly_budget",
)  # fmt: skip


@admin.register(models.Suite)
class SuiteAdmin(admin.ModelAdmin):
    list_display = ("name", "task_type", "quality_target", "monthly_volume", "created_at")
    search_fields = ("name",)
    # Changed on the suite page (audited): settings, sign-off policy, profile, baseline.
    readonly_fields = tuple(
        dict.fromkeys(("baseline_run", *SETTINGS_FIELDS, *UPLOAD_FIELDS, *SUITE_PROFILE_FIELDS))
    )


@admin.register(models.SuiteVersion)
class SuiteVersionAdmin(admin.ModelAdmin):
    list_display = ("suite", "number", "source_name", "created_at")
    list_filter = ("suite",)

    def has_change_permission(self, request, obj=None):
        return False  # versions are immutable


@admin.register(models.Case)
class CaseAdmin(admin.ModelAdmin):
    list_display = ("key", "version", "split", "position")
    list_filter = ("split",)
    search_fields = ("key",)

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(models.Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    list_display = ("name", "provider", "model", "kind", "price_in", "price_out", "price_hour")
    list_filter = ("provider", "kind")
    # Changed on the Endpoints page or the API, which check the key variable and record the change.
    readonly_fields = (*ENDPOINT_AUDITED, "adapter")

    def has_add_permission(self, request):
        return False  # registered on the Endpoints page or the API (checked and audited)


@admin.register(models.Strategy)
class StrategyAdmin(admin.ModelAdmin):
    list_display = ("name", "version", "kind")
    readonly_fields = ("name", "version", "kind", "params")  # versioned: a change is a new version


class ArmInline(admin.TabularInline):
    model = models.Arm
    extra = 0
    fields = ("endpoint", "strategy", "position")
    readonly_fields = fields


@admin.register(models.Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ("id", "suite_version", "status", "trigger", "created_at", "finished_at")
    list_filter = ("status", "trigger")
    inlines = [ArmInline]
    # A sign-off sets signed_off_at (services/signoffs.py); who started a run decides who may approve it.
    readonly_fields = ("suite_version", "split", "created_by", "signed_off_at")


@admin.register(models.Result)
class ResultAdmin(admin.ModelAdmin):
    list_display = ("id", "arm", "case", "sample", "score", "passed", "error")
    list_filter = ("passed",)
    raw_id_fields = ("arm", "case")


@admin.register(models.FineTuneJob)
class FineTuneJobAdmin(admin.ModelAdmin):
    list_display = ("id", "suite_version", "base_endpoint", "status", "step", "total_steps", "created_at")
    list_filter = ("status",)
    readonly_fields = ("adapter", "endpoint", "run", "losses")


admin.site.unregister(get_user_model())


@admin.register(get_user_model())
class UserAdmin(DjangoUserAdmin):
    """Django's, with a change of a user's groups recorded as one "user.roles" event."""

    def save_related(self, request, form, formsets, change):
        with user_roles_change(actor=request.user, user=form.instance):
            super().save_related(request, form, formsets, change)
