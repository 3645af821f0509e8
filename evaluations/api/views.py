"""Read API for runs (the CLI and CI use `evaluate --json`; this serves dashboards and scripts)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import generics, serializers

from evaluations import roles
from evaluations.models import Run
from evaluations.selectors.runs import run_arms_with_summaries, run_progress


@extend_schema_serializer(component_name="LegacyRun")  # API v1 has its own "Run"
class RunSerializer(serializers.ModelSerializer):
    suite = serializers.CharField(source="suite_version.suite.name")
    suite_version = serializers.IntegerField(source="suite_version.number")
    progress = serializers.SerializerMethodField()
    arms = serializers.SerializerMethodField()

    class Meta:
        model = Run
        fields = [
            "id", "suite", "suite_version", "status", "trigger", "repeats", "created_at", "started_at",
            "finished_at", "progress", "arms",
        ]  # fmt: skip

    def get_progress(self, run: Run) -> dict:
        return run_progress(run)

    def get_arms(self, run: Run) -> list[dict]:
        return [
            {"endpoint": arm.endpoint.name, "strategy": str(arm.strategy), **summary}
            for arm, summary in run_arms_with_summaries(run)
        ]


class RunList(generics.ListAPIView):
    action_permissions = {"get": roles.READ}
    queryset = Run.objects.select_related("suite_version__suite").order_by("-created_at", "-id")
    serializer_class = RunSerializer


class RunDetail(generics.RetrieveAPIView):
    action_permissions = {"get": roles.READ}
    queryset = Run.objects.select_related("suite_version__suite")
    serializer_class = RunSerializer
