"""Serializers of API v1: what each resource looks like, and what a request may send.

Reads use the `*Serializer` classes; writes validate their input with the `*Input` classes and hand
the result to a service. An endpoint's API key is never accepted nor returned: only `api_key_env`,
the NAME of the environment variable that holds it in the workers.
"""

from __future__ import annotations

import json
from datetime import datetime

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from evaluations.cron import describe
from evaluations.importers.sources import FORMATS
from evaluations.models import (
    Approval,
    Arm,
    Case,
    Endpoint,
    EndpointKind,
    Finding,
    FindingKind,
    Provider,
    Result,
    Run,
    RunStatus,
    Schedule,
    ScheduleArm,
    Severity,
    SignOffStatus,
    Strategy,
    Suite,
    SuiteVersion,
    TaskType,
)
from evaluations.selectors.schedules import next_fire
from evaluations.services import fewshot_optimize
from evaluations.services.runs import MAX_REPEATS

MAX_ID = 2**63 - 1  # the largest id a database column holds; larger numbers are refused, not looked up


def id_field(**kwargs) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=1, max_value=MAX_ID, **kwargs)


def _no_nul(value) -> None:
    """JSON values are stored as they come; PostgreSQL refuses NUL characters in text and JSON."""
    if "\\u0000" in json.dumps(value):
        raise serializers.ValidationError("must not contain NUL characters (\\u0000)")


def _json_safe(value) -> None:
    """JSON values are stored as they come: every number in them must be one JSON and the database
    hold (the parser refuses the others first; this keeps a serializer fed otherwise just as safe)."""
    from evaluations.api.parsers import number_errors

    errors = number_errors(value)
    if errors:
        raise serializers.ValidationError(errors)


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="what is wrong and what to do")


class JsonReady:
    # Representations made JSON-safe: stored JSON may hold NaN or infinity, which JSON has not.
    # (A comment, not a docstring: the schema would show it as every serializer's description.)

    def to_representation(self, instance):
        from evaluations.jsonsafe import json_ready

        return json_ready(super().to_representation(instance))


# --- references -------------------------------------------------------------------------------------


class SuiteRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class EndpointRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class StrategyRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    version = serializers.IntegerField()
    kind = serializers.CharField()


class ArmSerializer(serializers.ModelSerializer):
    endpoint = EndpointRefSerializer()
    strategy = StrategyRefSerializer()
    label = serializers.CharField()

    class Meta:
        model = Arm
        fields = ["id", "position", "endpoint", "strategy", "label"]


# --- suites -----------------------------------------------------------------------------------------


class SuiteSerializer(JsonReady, serializers.ModelSerializer):
    latest_version = serializers.IntegerField(
        allow_null=True, read_only=True, help_text="number of the newest version"
    )
    version_count = serializers.IntegerField(read_only=True)
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = Suite
        fields = [
            "id", "name", "description", "task_type", "quality_target", "pass_threshold", "monthly_volume",
            "regression_tolerance", "baseline_run", "latest_version", "version_count", "owner", "created_at",
        ]  # fmt: skip
        read_only_fields = fields


class SuiteVersionSerializer(JsonReady, serializers.ModelSerializer):
    suite = SuiteRefSerializer(read_only=True)
    test_cases = serializers.IntegerField(read_only=True)
    train_cases = serializers.IntegerField(read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = SuiteVersion
        fields = [
            "id", "suite", "number", "source_name", "source_format", "task_type", "labels", "notes",
            "default_assertions", "test_cases", "train_cases", "created_by", "created_at",
        ]  # fmt: skip
        read_only_fields = fields


class CaseSerializer(JsonReady, serializers.ModelSerializer):
    class Meta:
        model = Case
        fields = ["id", "key", "position", "input", "expected", "assertions", "tags", "metadata", "split"]
        read_only_fields = fields


class CaseFilter(serializers.Serializer):
    split = serializers.ChoiceField(choices=["test", "train"], required=False, help_text="only this split")


class SuiteUploadFields(serializers.Serializer):
    """The upload's fields besides its files (checked before anything is read or stored)."""

    name = serializers.CharField(max_length=200, help_text="the suite's name: a new suite, or a new version")
    format = serializers.ChoiceField(
        choices=list(FORMATS), required=False, help_text="the format, when detection is not enough"
    )
    task_type = serializers.ChoiceField(choices=TaskType.choices, required=False)
    test_fraction = serializers.FloatField(
        required=False, min_value=0, max_value=1, help_text="share of cases held out for testing"
    )
    seed = serializers.IntegerField(required=False, min_value=0, max_value=2**32 - 1)


class SuiteUploadInput(SuiteUploadFields):
    """Upload a suite: `name` and one or more `file` (any supported format, a config with its files,
    or a zip)."""

    file = serializers.ListField(child=serializers.FileField(), help_text="one or more files")


class SuiteUploadResultSerializer(serializers.Serializer):
    suite = SuiteRefSerializer()
    version = serializers.IntegerField()
    format = serializers.CharField()
    cases = serializers.DictField(child=serializers.IntegerField(), help_text="{test: n, train: n}")
    notes = serializers.ListField(child=serializers.CharField())


# --- endpoints and strategies -----------------------------------------------------------------------


class EndpointSerializer(JsonReady, serializers.ModelSerializer):
    warnings = serializers.SerializerMethodField(
        help_text="what ftvp does not check in params: unknown parameters, sent to the server as they "
        "are (e.g. top_k for vLLM), or those the local model ignores"
    )
    base_url = serializers.CharField(
        read_only=True, help_text="the server's URL; empty: the provider's default (or a local model)"
    )
    price_in = serializers.FloatField(read_only=True, help_text="USD per 1M input tokens")
    price_out = serializers.FloatField(read_only=True, help_text="USD per 1M output tokens")
    price_hour = serializers.FloatField(read_only=True, help_text="USD per compute hour (local models)")
    price_train = serializers.FloatField(
        read_only=True, help_text="USD per 1M training tokens: prices a hosted fine-tune of this base model"
    )
    training_cost = serializers.FloatField(read_only=True, allow_null=True)
    hosting_monthly = serializers.FloatField(read_only=True)

    class Meta:
        model = Endpoint
        fields = [
            "id", "name", "provider", "model", "base_url", "api_key_env", "params", "price_in", "price_out",
            "price_hour", "price_train", "kind", "base_endpoint", "training_cost", "hosting_monthly",
            "adapter", "max_concurrency", "timeout_seconds", "created_at", "warnings",
        ]  # fmt: skip
        read_only_fields = fields

    def get_warnings(self, endpoint: Endpoint) -> list[str]:
        from evaluations.services.endpoints import params_warnings

        return params_warnings(
            endpoint.params if isinstance(endpoint.params, dict) else {}, endpoint.provider
        )


SECRET_WORDS = ("key", "secret", "token", "password")


class EndpointInput(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    provider = serializers.ChoiceField(choices=Provider.choices)
    model = serializers.CharField(max_length=300, allow_blank=True)
    base_url = serializers.URLField(max_length=500, allow_blank=True, required=False)
    api_key_env = serializers.CharField(
        max_length=100,
        allow_blank=True,
        required=False,
        help_text="The NAME of the environment variable holding the API key in the workers "
        "(e.g. OPENAI_API_KEY); never the key itself, nor one of ftvp's own settings (FTVP_SECRET_KEY, "
        "DATABASE_URL, ...). A change of base_url must give api_key_env again: the key goes to the "
        "new host.",
    )
    kind = serializers.ChoiceField(choices=EndpointKind.choices, required=False)
    base_endpoint = id_field(required=False, allow_null=True, help_text="id of a fine-tuned model's base")
    price_in = serializers.DecimalField(max_digits=12, decimal_places=6, min_value=0, required=False)
    price_out = serializers.DecimalField(max_digits=12, decimal_places=6, min_value=0, required=False)
    price_hour = serializers.DecimalField(max_digits=12, decimal_places=6, min_value=0, required=False)
    price_train = serializers.DecimalField(
        max_digits=12, decimal_places=6, min_value=0, required=False,
        help_text="USD per 1M training tokens (hosted fine-tuning of this base model)",
    )  # fmt: skip
    training_cost = serializers.DecimalField(
        max_digits=12, decimal_places=4, min_value=0, required=False, allow_null=True
    )
    hosting_monthly = serializers.DecimalField(max_digits=12, decimal_places=2, min_value=0, required=False)
    max_concurrency = serializers.IntegerField(min_value=1, max_value=256, required=False)
    timeout_seconds = serializers.IntegerField(min_value=1, max_value=3600, required=False)
    params = serializers.DictField(
        required=False,
        help_text="generation parameters, e.g. temperature: OpenAI's chat completion parameters within "
        "their ranges (temperature 0-2, top_p 0-1, max_tokens >= 1, ...); other keys are sent as they are "
        "and listed in the answer's warnings",
    )

    def validate_params(self, value):
        _json_safe(value)
        _no_nul(value)
        return value

    def validate(self, attrs):
        # An API key sent under any name is refused, and never echoed back.
        for name in getattr(self, "initial_data", {}) or {}:
            if name not in self.fields and any(w in str(name).lower() for w in SECRET_WORDS):
                raise serializers.ValidationError(
                    {
                        str(name): "never send an API key to ftvp: set it in the workers' environment and "
                        "give the variable's NAME as api_key_env"
                    }
                )
        return attrs


class EndpointUpdateInput(EndpointInput):
    """The fields an existing endpoint can change (a new model or kind is a new endpoint)."""

    provider = None
    kind = None
    base_endpoint = None

    def validate(self, attrs):
        for name in ("provider", "kind", "base_endpoint", "adapter"):
            if name in (getattr(self, "initial_data", {}) or {}):
                raise serializers.ValidationError(
                    {name: "cannot be changed on an existing endpoint; register a new endpoint instead"}
                )
        return super().validate(attrs)


class StrategySerializer(JsonReady, serializers.ModelSerializer):
    class Meta:
        model = Strategy
        fields = ["id", "name", "version", "kind", "params", "description", "created_at"]
        read_only_fields = fields


class StrategyOptimizeInput(serializers.Serializer):
    suite = id_field(help_text="suite id: its latest version's train split is searched")
    endpoint = id_field(help_text="endpoint id: the model the candidates are scored with")
    k = serializers.IntegerField(
        min_value=1, max_value=fewshot_optimize.MAX_K, default=3, help_text="demonstrations per prompt"
    )
    candidates = serializers.IntegerField(
        min_value=1, max_value=fewshot_optimize.MAX_CANDIDATES, default=8,
        help_text="candidate demonstration sets tried (calls = candidates x dev cases)",
    )  # fmt: skip
    dev_size = serializers.IntegerField(
        min_value=1, max_value=fewshot_optimize.MAX_DEV_SIZE, default=20,
        help_text="dev cases carved from the train split, at most (about 30% of it)",
    )  # fmt: skip
    seed = serializers.IntegerField(
        min_value=0, max_value=fewshot_optimize.MAX_SEED, default=0, help_text="same seed, same search"
    )
    name = serializers.CharField(
        max_length=fewshot_optimize.NAME_MAX, required=False, allow_blank=True,
        help_text="the strategy's name; default few-shot-optimized-<suite>",
    )  # fmt: skip

    def validate(self, attrs):
        suite = Suite.objects.filter(pk=attrs["suite"]).first()
        if suite is None:
            raise serializers.ValidationError({"suite": f"no suite #{attrs['suite']} (GET /api/v1/suites/)"})
        endpoint = Endpoint.objects.filter(pk=attrs["endpoint"]).first()
        if endpoint is None:
            raise serializers.ValidationError(
                {"endpoint": f"no endpoint #{attrs['endpoint']} (GET /api/v1/endpoints/ lists them)"}
            )
        attrs["suite"], attrs["endpoint"] = suite, endpoint
        return attrs


class StrategyOptimizeQueued(serializers.Serializer):
    detail = serializers.CharField(help_text="what was queued and where its strategy will appear")
    name = serializers.CharField(help_text="the strategy's name; its next version is the frozen one")
    suite = SuiteRefSerializer()
    suite_version = serializers.IntegerField()
    endpoint = EndpointRefSerializer()
    dev_cases = serializers.IntegerField()
    max_calls = serializers.IntegerField(help_text="candidates x dev cases")
    request = serializers.CharField(help_text="the strategy's params.search.request once frozen")


# --- runs -------------------------------------------------------------------------------------------


class RunSerializer(serializers.ModelSerializer):
    suite = SuiteRefSerializer(source="suite_version.suite", read_only=True)
    suite_version = serializers.IntegerField(source="suite_version.number", read_only=True)
    arms = ArmSerializer(many=True, read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = Run
        fields = [
            "id", "suite", "suite_version", "status", "trigger", "repeats", "use_cache", "split",
            "expected_results", "schedule", "error", "arms", "created_by", "created_at", "started_at",
            "finished_at",
        ]  # fmt: skip
        read_only_fields = fields


class ProgressSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=RunStatus.choices)
    results_done = serializers.IntegerField()
    results_total = serializers.IntegerField()
    errors = serializers.IntegerField()
    batches_total = serializers.IntegerField()
    batches_generated = serializers.IntegerField()
    batches_scored = serializers.IntegerField()
    percent = serializers.FloatField()
    finished = serializers.BooleanField()


class StallSerializer(serializers.Serializer):
    reason = serializers.CharField(help_text="why the run is stalled, in words")
    last_progress = serializers.DateTimeField(help_text="when the run last moved")
    worker_last_seen = serializers.DateTimeField(
        allow_null=True, help_text="when a worker last reported in (null: none is reporting in)"
    )


class RunDetailSerializer(RunSerializer):
    progress = serializers.SerializerMethodField()
    is_baseline = serializers.SerializerMethodField()
    stall = serializers.SerializerMethodField()

    class Meta(RunSerializer.Meta):
        fields = [*RunSerializer.Meta.fields, "progress", "is_baseline", "stall"]
        read_only_fields = fields

    @extend_schema_field(ProgressSerializer)
    def get_progress(self, run: Run) -> dict:
        from evaluations.selectors.runs import run_progress

        return run_progress(run)

    def get_is_baseline(self, run: Run) -> bool:
        return run.suite_version.suite.baseline_run_id == run.pk

    @extend_schema_field(StallSerializer(allow_null=True))
    def get_stall(self, run: Run) -> dict | None:
        """Null unless the run is stalled: unfinished, no worker alive, no progress (resume it)."""
        from evaluations.selectors.stalls import run_stall

        stall = run_stall(run)
        return StallSerializer(stall.as_dict()).data if stall else None


class RunFilter(serializers.Serializer):
    suite = id_field(required=False, help_text="only runs of this suite (id)")
    status = serializers.ChoiceField(choices=RunStatus.choices, required=False)


class ArmInput(serializers.Serializer):
    endpoint = id_field(help_text="endpoint id")
    strategy = id_field(help_text="strategy id")


def resolve_arms(arms: list[dict]) -> list[tuple[Endpoint, Strategy]]:
    """[{endpoint, strategy}] ids as (Endpoint, Strategy) pairs; unknown ids name the arm."""
    # A PATCH validates partially, the arms' fields too (DRF): an arm missing one is named here.
    missing = {
        i: {name: ["This field is required."] for name in ("endpoint", "strategy") if name not in arm}
        for i, arm in enumerate(arms)
        if not {"endpoint", "strategy"} <= set(arm)
    }
    if missing:
        raise serializers.ValidationError({"arms": missing})
    endpoints = Endpoint.objects.in_bulk([a["endpoint"] for a in arms])
    strategies = Strategy.objects.in_bulk([a["strategy"] for a in arms])
    pairs, errors = [], {}
    for i, arm in enumerate(arms):
        endpoint, strategy = endpoints.get(arm["endpoint"]), strategies.get(arm["strategy"])
        if endpoint is None:
            errors[i] = {"endpoint": [f"no endpoint #{arm['endpoint']} (GET /api/v1/endpoints/ lists them)"]}
        elif strategy is None:
            errors[i] = {"strategy": [f"no strategy #{arm['strategy']} (GET /api/v1/strategies/ lists them)"]}
        else:
            pairs.append((endpoint, strategy))
    if errors:
        raise serializers.ValidationError({"arms": errors})
    return pairs


def resolve_version(suite: Suite, number: int | None) -> SuiteVersion:
    versions = suite.versions.all()
    version = versions.filter(number=number).first() if number else versions.order_by("-number").first()
    if version is None and number:
        known = ", ".join(str(n) for n in versions.values_list("number", flat=True)) or "none"
        raise serializers.ValidationError(
            {"suite_version": f"suite {suite.name!r} has no version {number} (versions: {known})"}
        )
    if version is None:
        raise serializers.ValidationError(
            {"suite": f"suite {suite.name!r} has no version yet: upload one (POST /api/v1/suites/)"}
        )
    return version


class RunCreateInput(serializers.Serializer):
    suite = id_field(help_text="suite id")
    suite_version = serializers.IntegerField(
        min_value=1, max_value=MAX_ID, required=False, allow_null=True,
        help_text="version number; default: the suite's latest version",
    )  # fmt: skip
    arms = serializers.ListField(
        child=ArmInput(), min_length=1, max_length=100, help_text="each arm: one endpoint with one strategy"
    )
    repeats = serializers.IntegerField(
        min_value=1, max_value=MAX_REPEATS, default=1, help_text="samples per case and arm"
    )
    use_cache = serializers.BooleanField(
        default=True, help_text="serve temperature-0 answers already seen from the cache"
    )
    split = serializers.ChoiceField(
        choices=["test", "train"],
        default="test",
        help_text="test: an evaluation; train: a labelling run (the arms answer the train cases: a "
        "teacher's answers, reviewed, then distilled with a fine-tune of source `run:RUN:ARM`)",
    )

    def validate(self, attrs):
        suite = Suite.objects.filter(pk=attrs["suite"]).first()
        if suite is None:
            raise serializers.ValidationError({"suite": f"no suite #{attrs['suite']}"})
        attrs["suite_version"] = resolve_version(suite, attrs.get("suite_version"))
        attrs["arms"] = resolve_arms(attrs["arms"])
        return attrs


class ResultCaseSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    key = serializers.CharField()


class ResultSerializer(JsonReady, serializers.ModelSerializer):
    case = ResultCaseSerializer(read_only=True)

    class Meta:
        model = Result
        fields = [
            "id", "arm", "case", "sample", "output", "answer", "prompt_tokens", "completion_tokens",
            "latency_ms", "cost", "cached", "error", "score", "passed", "scores", "created_at", "scored_at",
        ]  # fmt: skip
        read_only_fields = fields


class ResultFilter(serializers.Serializer):
    arm = id_field(required=False, help_text="only results of this arm (id) of the run")
    outcome = serializers.ChoiceField(
        choices=["pass", "fail", "error", "pending"], required=False, help_text="only these results"
    )


class ArmSummarySerializer(JsonReady, ArmSerializer):
    summary = serializers.DictField(
        source="summary_now",
        help_text="cases, mean_score, score_ci, pass_rate, accuracy, macro_f1, errors, costs, tokens, "
        "latency percentiles (null when they cannot be computed)",
    )

    class Meta(ArmSerializer.Meta):
        fields = [*ArmSerializer.Meta.fields, "summary"]


# --- findings ---------------------------------------------------------------------------------------


class FindingSerializer(JsonReady, serializers.ModelSerializer):
    suite = SuiteRefSerializer(read_only=True)
    arm = ArmSerializer(read_only=True, allow_null=True)
    acknowledged_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    open = serializers.SerializerMethodField()

    class Meta:
        model = Finding
        fields = [
            "id", "suite", "run", "arm", "baseline_run", "kind", "severity", "title", "details", "open",
            "created_at", "acknowledged_at", "acknowledged_by", "comment",
        ]  # fmt: skip
        read_only_fields = fields

    def get_open(self, finding: Finding) -> bool:
        return finding.acknowledged_at is None


class FindingFilter(serializers.Serializer):
    suite = id_field(required=False, help_text="only findings of this suite (id)")
    run = id_field(required=False, help_text="only findings of this run (id)")
    kind = serializers.ChoiceField(choices=FindingKind.choices, required=False)
    severity = serializers.ChoiceField(choices=Severity.choices, required=False)
    open = serializers.BooleanField(
        required=False, allow_null=True, default=None, help_text="true: not acknowledged; false: acknowledged"
    )


class AcknowledgeInput(serializers.Serializer):
    comment = serializers.CharField(
        max_length=2000, allow_blank=True, required=False, default="", help_text="what was done about it"
    )


class RunSummarySerializer(serializers.Serializer):
    run = RunSerializer()
    arms = ArmSummarySerializer(many=True)
    regressions = FindingSerializer(many=True, help_text="regressions against the suite's baseline")


class BaselineSerializer(serializers.Serializer):
    suite = SuiteRefSerializer()
    baseline_run = serializers.IntegerField(allow_null=True)


# --- schedules --------------------------------------------------------------------------------------


class ScheduleArmSerializer(serializers.ModelSerializer):
    endpoint = EndpointRefSerializer(read_only=True)
    strategy = StrategyRefSerializer(read_only=True)

    class Meta:
        model = ScheduleArm
        fields = ["endpoint", "strategy"]
        read_only_fields = fields


class ScheduleSerializer(serializers.ModelSerializer):
    suite = SuiteRefSerializer(read_only=True)
    suite_version = serializers.IntegerField(
        source="suite_version.number",
        read_only=True,
        allow_null=True,
        help_text="pinned version number; null: the suite's latest version when it fires",
    )
    arms = ScheduleArmSerializer(many=True, read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    cron_description = serializers.SerializerMethodField()
    next_run_at = serializers.SerializerMethodField()

    class Meta:
        model = Schedule
        fields = [
            "id", "suite", "name", "suite_version", "cron", "cron_description", "timezone", "enabled",
            "repeats", "arms", "next_run_at", "last_fired_at", "last_run", "created_by", "created_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_cron_description(self, schedule: Schedule) -> str:
        return describe(schedule.cron)

    def get_next_run_at(self, schedule: Schedule) -> datetime | None:
        """When beat fires it next (null when disabled)."""
        return next_fire(schedule)


class ScheduleFilter(serializers.Serializer):
    suite = id_field(required=False, help_text="only schedules of this suite (id)")


class ScheduleInput(serializers.Serializer):
    suite = id_field(help_text="suite id")
    name = serializers.CharField(max_length=200)
    arms = serializers.ListField(child=ArmInput(), min_length=1, max_length=100)
    cron = serializers.CharField(
        max_length=100,
        required=False,
        help_text="minute hour day-of-month month day-of-week; default 0 2 * * * (02:00 nightly)",
    )
    timezone = serializers.CharField(
        max_length=64, required=False, help_text="an IANA name, e.g. Europe/Paris; default UTC"
    )
    suite_version = serializers.IntegerField(
        min_value=1, max_value=MAX_ID, required=False, allow_null=True,
        help_text="pin this version number; null: the suite's latest version when it fires",
    )  # fmt: skip
    enabled = serializers.BooleanField(required=False)
    repeats = serializers.IntegerField(min_value=1, max_value=MAX_REPEATS, required=False)


class ScheduleUpdateInput(ScheduleInput):
    """Any subset of the schedule's fields; a schedule stays with its suite."""

    suite = None


# --- sign-offs --------------------------------------------------------------------------------------


class ApprovalSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    approver = serializers.CharField(source="approver.username", allow_null=True, help_text="username")
    decision = serializers.ChoiceField(choices=Approval.Decision.choices)
    comment = serializers.CharField()
    created_at = serializers.DateTimeField()
    voided_at = serializers.DateTimeField(
        allow_null=True, help_text="set when the run was re-scored: the approval no longer counts"
    )


class SignOffSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    run = serializers.IntegerField(source="run_id")
    suite = serializers.IntegerField(source="suite_id")
    status = serializers.ChoiceField(choices=SignOffStatus.choices)
    note = serializers.CharField()
    approvals_required = serializers.IntegerField(help_text="the suite's policy when it was requested")
    approvals = serializers.IntegerField(source="live_approvals", help_text="live approvals so far")
    requested_by = serializers.CharField(
        source="requested_by.username", allow_null=True, help_text="username"
    )
    created_at = serializers.DateTimeField()
    decided_at = serializers.DateTimeField(allow_null=True)
    decisions = ApprovalSerializer(many=True, source="decision_list", help_text="approvals and rejections")


class RunSignOffSerializer(serializers.Serializer):
    run = serializers.IntegerField()
    signed_off_at = serializers.DateTimeField(
        allow_null=True, help_text="when the policy was met: the run is then locked (no delete, no re-score)"
    )
    status = serializers.CharField(
        help_text="the status of the latest request: not_requested, pending, approved, rejected or withdrawn"
    )
    signoffs = SignOffSerializer(many=True, help_text="every request, newest first")


class SignOffRequestInput(serializers.Serializer):
    note = serializers.CharField(
        max_length=5000, required=False, allow_blank=True, help_text="what approvers should know"
    )

    def validate_note(self, value):
        _no_nul(value)
        return value


class SignOffDecisionInput(serializers.Serializer):
    comment = serializers.CharField(
        max_length=5000, required=False, allow_blank=True, help_text="required to reject"
    )

    def validate_comment(self, value):
        _no_nul(value)
        return value


# --- fine-tuning jobs -------------------------------------------------------------------------------

FINETUNE_BACKENDS = (
    ("local", "local: LoRA on a local base model, trained by a worker on the `training` queue"),
    (
        "openai",
        "openai: the base endpoint's OpenAI-compatible fine-tuning API (its base URL and key variable)",
    ),
)
SUFFIX_MAX = 64  # the service's HostedHyperparameters limit, for the help text


def _hyperparameter_checker(backend: str):
    """(known names, check(name, value) -> problem or None) of a backend's hyperparameters: the
    classes the service validates with, one key at a time so that every bad key is named."""
    from evaluations.services import finetune
    from evaluations.training import Hyperparameters, TrainingError

    cls = Hyperparameters if backend == "local" else finetune.HostedHyperparameters

    def check(name: str, value) -> str | None:
        try:
            cls.from_dict({name: value})
        except (TrainingError, finetune.FineTuneError) as exc:
            return str(exc).removeprefix(f"{name}: ")
        return None

    return tuple(f for f in cls.__dataclass_fields__ if f != "LIMITS"), check


def hyperparameter_errors(backend: str, values: dict) -> dict[str, str]:
    """name -> what is wrong with it, for every bad or unknown hyperparameter of `backend`."""
    known, check = _hyperparameter_checker(backend)
    errors = {}
    for name, value in values.items():
        if name not in known:
            errors[str(name)] = f"unknown for the {backend} backend; known: {', '.join(known)}"
        elif value is not None and value != "":
            problem = check(name, value)
            if problem:
                errors[name] = problem
    return errors


class FineTuneSerializer(JsonReady, serializers.Serializer):
    id = serializers.IntegerField()
    suite = SuiteRefSerializer(source="suite_version.suite")
    suite_version = serializers.IntegerField(source="suite_version.number")
    base_endpoint = EndpointRefSerializer()
    backend = serializers.SerializerMethodField()
    status = serializers.CharField(help_text="queued, running, succeeded, failed or cancelled")
    hyperparameters = serializers.DictField()
    examples = serializers.IntegerField(help_text="training examples (train cases with an expected output)")
    step = serializers.IntegerField()
    total_steps = serializers.IntegerField()
    percent = serializers.FloatField()
    trained_tokens = serializers.SerializerMethodField()
    compute_seconds = serializers.FloatField(allow_null=True)
    training_cost = serializers.FloatField(allow_null=True, help_text="USD, once trained")
    source = serializers.SerializerMethodField()
    data_cost = serializers.FloatField(
        allow_null=True,
        help_text="USD: what making the training data cost (a teacher's labelling run, synthetic "
        "generation); the decision adds it to the training cost",
    )
    teacher = serializers.SerializerMethodField()
    endpoint = EndpointRefSerializer(allow_null=True, help_text="the fine-tuned endpoint, once registered")
    run = serializers.IntegerField(
        source="run_id",
        allow_null=True,
        help_text="the evaluation run of the fine-tuned endpoint, once started",
    )
    error = serializers.CharField()
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)

    def get_backend(self, job) -> str:
        return job.backend

    def get_trained_tokens(self, job) -> int | None:
        """Tokens the hosted backend trained on (null for local jobs and until it says)."""
        return job.trained_tokens

    @extend_schema_field(serializers.DictField())
    def get_source(self, job) -> dict:
        """What it trains on: {spec, parts: [{spec, kind, label, examples, kept, cost}], examples,
        duplicates, data_cost, teacher, sample: [{key, input, answer, from}]}."""
        return dict(job.source or {"spec": "train"})

    def get_teacher(self, job) -> str | None:
        """Distillation: the endpoint · strategy whose answers it trains on (evaluated beside it)."""
        if job.teacher_endpoint_id is None or job.teacher_strategy_id is None:
            return None
        return f"{job.teacher_endpoint.name} · {job.teacher_strategy}"


class FineTuneDetailSerializer(FineTuneSerializer):
    losses = serializers.ListField(child=serializers.FloatField(), help_text="training loss per step")
    remote_job_id = serializers.SerializerMethodField()
    fine_tuned_model = serializers.SerializerMethodField()
    events = serializers.SerializerMethodField()
    checkpoints = serializers.SerializerMethodField()

    def get_remote_job_id(self, job) -> str:
        """The hosted backend's job id (empty for local jobs)."""
        return job.remote_job_id

    def get_fine_tuned_model(self, job) -> str:
        """The model the hosted backend trained (empty for local jobs: see endpoint)."""
        return job.fine_tuned_model

    @extend_schema_field(serializers.ListField(child=serializers.DictField()))
    def get_events(self, job) -> list:
        """The hosted backend's job events, oldest first (empty for local jobs: see losses)."""
        return list(job.events or [])

    @extend_schema_field(serializers.ListField(child=serializers.DictField()))
    def get_checkpoints(self, job) -> list:
        """The hosted backend's checkpoints (empty for local jobs)."""
        return list(job.checkpoints or [])


class FineTuneFilter(serializers.Serializer):
    suite = id_field(required=False, help_text="only jobs of this suite (id)")
    status = serializers.ChoiceField(
        choices=["queued", "running", "succeeded", "failed", "cancelled"], required=False
    )
    backend = serializers.ChoiceField(choices=FINETUNE_BACKENDS, required=False)


class FineTuneCreateInput(serializers.Serializer):
    suite = id_field(help_text="suite id: its train split is the training data")
    suite_version = serializers.IntegerField(
        min_value=1, max_value=MAX_ID, required=False, allow_null=True,
        help_text="version number; default: the suite's latest version",
    )  # fmt: skip
    base_endpoint = id_field(
        help_text="id of a base-model endpoint: a local model (backend local) or an OpenAI-compatible "
        "one (backend openai: its base URL and key variable are used)"
    )
    backend = serializers.ChoiceField(choices=FINETUNE_BACKENDS, default="local")
    source = serializers.CharField(
        required=False,
        default="train",
        max_length=500,
        help_text="what it trains on: `train` (the train split) | `run:RUN:ARM` (a labelling run's "
        "passing answers; `run:RUN:ARM:all` for all of them: distillation from that teacher, which is "
        "then evaluated beside the student) | `reviewed:RUN` (what reviewers accepted or corrected) | "
        "several joined by `,` (a union, duplicate inputs removed). ARM: the arm's id or its endpoint's "
        "name.",
    )
    hyperparameters = serializers.DictField(
        required=False,
        default=dict,
        help_text="local: epochs (1-50), batch_size (1-256), learning_rate (0-1], rank, alpha, dropout, "
        "target_modules, max_length, seed (qlora where CUDA is); openai: epochs, batch_size, "
        f"learning_rate_multiplier (0-10], suffix (up to {SUFFIX_MAX} letters, digits, - and _), seed, "
        "validation_fraction. Unknown keys are refused, naming them.",
    )

    def validate_hyperparameters(self, value):
        _json_safe(value)
        _no_nul(value)
        return value

    def validate_source(self, value):
        from evaluations.selectors.training_data import TrainingSourceError, parse_source

        _no_nul(value)
        try:
            return ",".join(part.spec for part in parse_source(value))
        except TrainingSourceError as exc:
            raise serializers.ValidationError(str(exc)) from None

    def validate(self, attrs):
        suite = Suite.objects.filter(pk=attrs["suite"]).first()
        if suite is None:
            raise serializers.ValidationError({"suite": f"no suite #{attrs['suite']} (GET /api/v1/suites/)"})
        attrs["suite_version"] = resolve_version(suite, attrs.get("suite_version"))
        backend = attrs["backend"]
        endpoint = Endpoint.objects.filter(pk=attrs["base_endpoint"]).first()
        if endpoint is None:
            missing = f"no endpoint #{attrs['base_endpoint']} (GET /api/v1/endpoints/ lists them)"
            raise serializers.ValidationError({"base_endpoint": missing})
        if endpoint.kind != EndpointKind.BASE:
            raise serializers.ValidationError(
                {"base_endpoint": f"{endpoint.name!r} is a fine-tuned endpoint; fine-tune its base model"}
            )
        wanted = Provider.LOCAL if backend == "local" else Provider.OPENAI
        if endpoint.provider != wanted:
            wrong = (
                f"{endpoint.name!r} is a {endpoint.get_provider_display()} endpoint; the {backend} "
                f"backend fine-tunes a {Provider(wanted).label} base model"
            )
            raise serializers.ValidationError({"base_endpoint": wrong})
        attrs["base_endpoint"] = endpoint
        errors = hyperparameter_errors(backend, attrs.get("hyperparameters") or {})
        if errors:
            raise serializers.ValidationError({"hyperparameters": errors})
        return attrs
