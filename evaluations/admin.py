from django.contrib import admin

from evaluations import models


@admin.register(models.Suite)
class SuiteAdmin(admin.ModelAdmin):
    list_display = ("name", "task_type", "quality_target", "monthly_volume", "created_at")
    search_fields = ("name",)


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
    readonly_fields = ("adapter",)  # written by fine-tuning jobs only


@admin.register(models.Strategy)
class StrategyAdmin(admin.ModelAdmin):
    list_display = ("name", "version", "kind")


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
