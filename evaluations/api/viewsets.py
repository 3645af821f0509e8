"""API v1 resources: suites, endpoints, strategies, runs, findings, schedules, fine-tuning jobs.

Thin: parse and validate the request (serializers.py), call a service (writes) or a selector or a
queryset (reads), answer. Service errors become 400s naming the field; unknown ids 404s.
"""

from __future__ import annotations

from django.db.models import Count, Max, Prefetch, Q
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from evaluations import roles
from evaluations.api import serializers as s
from evaluations.api.errors import BadRequest, Conflict, service_errors
from evaluations.api.pagination import Pagination
from evaluations.api.parsers import JsonSafeParser
from evaluations.models import (
    Arm,
    Endpoint,
    EndpointKind,
    Finding,
    FineTuneJob,
    Run,
    Schedule,
    ScheduleArm,
    Strategy,
    Suite,
    SuiteVersion,
    Trigger,
)
from evaluations.selectors.runs import results_for_run, run_arms_with_summaries
from evaluations.selectors.suites import version_cases
from evaluations.services import signoffs as signoff_services
from evaluations.services.endpoints import endpoint_create, endpoint_update
from evaluations.services.fewshot_optimize import OptimizeError, strategy_optimize_request
from evaluations.services.findings import BaselineError, baseline_set, finding_acknowledge, run_regressions
from evaluations.services.finetune import FineTuneError, finetune_cancel, finetune_create
from evaluations.services.runs import RunError, run_cancel, run_create, run_delete, run_resume
from evaluations.services.schedules import ScheduleError, schedule_create, schedule_delete, schedule_update


def query(request, serializer_class) -> dict:
    """The query parameters, validated by `serializer_class`; only those given."""
    given = {k: v for k, v in request.query_params.items() if v != ""}  # `?suite=` means no filter
    checked = serializer_class(data=given)
    checked.is_valid(raise_exception=True)
    return {k: v for k, v in checked.validated_data.items() if v is not None}


def body(request, serializer_class, *, partial: bool = False) -> dict:
    checked = serializer_class(data=request.data, partial=partial)
    checked.is_valid(raise_exception=True)
    return dict(checked.validated_data)


class ApiViewSet(viewsets.GenericViewSet):
    """Who may call what: each viewset's `action_permissions` (evaluations/api/permissions.py); reads
    need roles.READ, a write action without an entry is refused."""

    lookup_value_converter = "int"
    pagination_class = Pagination
    parser_classes = [JsonSafeParser]  # numbers JSON and the database cannot hold: a 400 naming the field

    def paginated(self, queryset, serializer_class):
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(serializer_class(page, many=True).data)


def _arms() -> Prefetch:
    return Prefetch("arms", queryset=Arm.objects.select_related("endpoint", "strategy").order_by("position"))


# --- suites -----------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="Suites", tags=["suites"]),
    retrieve=extend_schema(summary="A suite", tags=["suites"]),
)
class SuiteViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    action_permissions = {"create": roles.UPLOAD}
    serializer_class = s.SuiteSerializer
    parser_classes = [MultiPartParser]
    queryset = (
        Suite.objects.annotate(
            version_count=Count("versions", distinct=True), latest_version=Max("versions__number")
        )
        .select_related("owner")
        .order_by("name")
    )

    @extend_schema(
        operation_id="suite_upload",
        summary="Upload a suite file (or a config with its files, or a zip) as a new version",
        description="All or nothing, like the upload page: multipart `name`, one or more `file`, optional "
        "`format`, `task_type`, `test_fraction`, `seed`.",
        tags=["suites"],
        request={"multipart/form-data": s.SuiteUploadInput},
        responses={
            201: s.SuiteUploadResultSerializer,
            400: OpenApiResponse(
                s.ErrorSerializer,
                description="the files are not a valid suite: `detail`, "
                "and `errors` lists every problem with its file, line and field",
            ),
            413: OpenApiResponse(s.ErrorSerializer, description="the upload is larger than the limit"),
        },
    )
    def create(self, request):
        from evaluations.api.uploads import upload_suite

        return upload_suite(request)

    def _versions(self, suite: Suite):
        return (
            SuiteVersion.objects.filter(suite=suite)
            .select_related("suite", "created_by")
            .annotate(
                test_cases=Count("cases", filter=Q(cases__split="test")),
                train_cases=Count("cases", filter=Q(cases__split="train")),
            )
            .order_by("-number")
        )

    @extend_schema(
        operation_id="suite_versions",
        summary="A suite's versions, newest first",
        tags=["suites"],
        responses=s.SuiteVersionSerializer(many=True),
    )
    @action(detail=True, methods=["get"], serializer_class=s.SuiteVersionSerializer)
    def versions(self, request, pk=None):
        return self.paginated(self._versions(self.get_object()), s.SuiteVersionSerializer)

    @extend_schema(
        operation_id="suite_version",
        summary="One version of a suite",
        tags=["suites"],
        parameters=[
            OpenApiParameter("number", OpenApiTypes.INT, OpenApiParameter.PATH, description="version number")
        ],
        responses=s.SuiteVersionSerializer,
    )
    @action(
        detail=True,
        methods=["get"],
        url_path="versions/<int:number>",
        serializer_class=s.SuiteVersionSerializer,
        pagination_class=None,
    )
    def version(self, request, pk=None, number=None):
        version = get_object_or_404(self._versions(self.get_object()), number=number)
        return Response(s.SuiteVersionSerializer(version).data)

    @extend_schema(
        operation_id="suite_version_cases",
        summary="The cases of a version, in order",
        tags=["suites"],
        parameters=[
            OpenApiParameter("number", OpenApiTypes.INT, OpenApiParameter.PATH, description="version number"),
            s.CaseFilter,
        ],
        responses=s.CaseSerializer(many=True),
    )
    @action(
        detail=True,
        methods=["get"],
        url_path="versions/<int:number>/cases",
        serializer_class=s.CaseSerializer,
    )
    def cases(self, request, pk=None, number=None):
        suite = self.get_object()
        version = get_object_or_404(SuiteVersion, suite=suite, number=number)
        filters = query(request, s.CaseFilter)
        return self.paginated(version_cases(version, split=filters.get("split", "")), s.CaseSerializer)


# --- endpoints and strategies -----------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="Endpoints (models to call)", tags=["endpoints"]),
    retrieve=extend_schema(summary="An endpoint", tags=["endpoints"]),
)
class EndpointViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """API keys are never accepted nor returned: `api_key_env` is the NAME of the variable holding
    the key in the workers' environment. Generation params and prices are an editor's; the connection
    (provider, model, base_url, api_key_env) is an admin's, so a request that sets it needs that too."""

    action_permissions = {"create": roles.ADD_ENDPOINT, "partial_update": roles.EDIT_ENDPOINT}
    connection_fields = ("provider", "model", "base_url", "api_key_env")
    serializer_class = s.EndpointSerializer
    queryset = Endpoint.objects.order_by("name")
    http_method_names = ["get", "post", "patch", "head", "options"]

    def check_permissions(self, request):
        super().check_permissions(request)
        if self.action not in ("create", "partial_update"):
            return
        if request.user.has_perm(roles.ENDPOINT_CONNECTION):
            return
        data = request.data if isinstance(request.data, dict) else {}
        given = [name for name in self.connection_fields if name in data]
        if self.action == "partial_update" and not given:
            return
        what = f"setting {', '.join(given)}" if given else "registering an endpoint (it sets its connection)"
        holders = ", ".join(roles.roles_with(roles.ENDPOINT_CONNECTION)) or "none"
        self.permission_denied(
            request,
            message=f"{what} needs the permission {roles.ENDPOINT_CONNECTION} (roles that have it: "
            f"{holders}); ask an admin. Params, prices, limits and the name can be changed without it.",
        )

    @extend_schema(
        operation_id="endpoint_create",
        summary="Register an endpoint",
        tags=["endpoints"],
        request=s.EndpointInput,
        responses={201: s.EndpointSerializer},
    )
    def create(self, request):
        data = body(request, s.EndpointInput)
        base_id = data.pop("base_endpoint", None)
        if base_id is not None:
            base = Endpoint.objects.filter(pk=base_id, kind=EndpointKind.BASE).first()
            if base is None:
                raise BadRequest(f"base_endpoint: no base-model endpoint #{base_id}")
            data["base_endpoint"] = base
        if Endpoint.objects.filter(name=data["name"].strip()).exists():
            raise BadRequest(f"name: an endpoint named {data['name'].strip()!r} exists already")
        with service_errors():
            endpoint = endpoint_create(**data, user=request.user)
        return Response(s.EndpointSerializer(endpoint).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="endpoint_update",
        summary="Change an endpoint (name, model, URL, key variable, parameters, prices, limits)",
        tags=["endpoints"],
        request=s.EndpointUpdateInput,
        responses=s.EndpointSerializer,
    )
    def partial_update(self, request, pk=None):
        endpoint = self.get_object()
        data = body(request, s.EndpointUpdateInput, partial=True)
        name = data.get("name", "").strip()
        if name and Endpoint.objects.filter(name=name).exclude(pk=endpoint.pk).exists():
            raise BadRequest(f"name: an endpoint named {name!r} exists already")
        with service_errors():
            endpoint = endpoint_update(endpoint=endpoint, **data, user=request.user)
        return Response(s.EndpointSerializer(endpoint).data)


@extend_schema_view(
    list=extend_schema(summary="Prompting strategies", tags=["strategies"]),
    retrieve=extend_schema(summary="A strategy", tags=["strategies"]),
)
class StrategyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    action_permissions = {"optimize": roles.RUN}
    serializer_class = s.StrategySerializer
    queryset = Strategy.objects.order_by("name", "-version")

    @extend_schema(
        operation_id="strategy_optimize",
        summary="Search the train split for the best few-shot demonstrations, frozen as a new strategy",
        description="A seeded search (queued for a worker on the `llm` queue): a dev slice is carved "
        "from the suite's latest train split, `candidates` sets of `k` demonstrations (and their order) "
        "are tried on it with the endpoint and scored with the suite's own assertions, and the best is "
        "frozen as the next version of a `few-shot-optimized` strategy. It appears in "
        "`GET /api/v1/strategies/` when done; its `params` hold the examples and `params.search` what "
        "the search found and cost (calls, tokens, USD). Refused (400) when the train split has fewer "
        "than k+2 labelled cases.",
        tags=["strategies"],
        request=s.StrategyOptimizeInput,
        responses={
            202: s.StrategyOptimizeQueued,
            400: OpenApiResponse(s.ErrorSerializer, description="cannot be made: `detail` says why"),
        },
    )
    @action(detail=False, methods=["post"], pagination_class=None)
    def optimize(self, request):
        data = body(request, s.StrategyOptimizeInput)
        suite, endpoint = data["suite"], data["endpoint"]
        with service_errors(OptimizeError):
            queued = strategy_optimize_request(
                suite=suite, endpoint=endpoint, k=data["k"], candidates=data["candidates"],
                dev_size=data["dev_size"], seed=data["seed"], name=data.get("name") or None,
                user=request.user,
            )  # fmt: skip
        detail = (
            f"queued: a search of {data['candidates']} candidate(s) of k={data['k']} on "
            f"{queued['dev_cases']} dev case(s) of {suite.name} v{queued['suite_version']} with "
            f"{endpoint.name} (up to {queued['max_calls']} calls); when a worker has run it, "
            f"{queued['name']} appears in GET /api/v1/strategies/ with its examples and search cost "
            "in params"
        )
        payload = {
            "detail": detail, **queued,
            "suite": {"id": suite.pk, "name": suite.name},
            "endpoint": {"id": endpoint.pk, "name": endpoint.name},
        }  # fmt: skip
        return Response(s.StrategyOptimizeQueued(payload).data, status=status.HTTP_202_ACCEPTED)


# --- runs -------------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="Runs, newest first", tags=["runs"], parameters=[s.RunFilter]),
    retrieve=extend_schema(summary="A run: status, arms and progress", tags=["runs"]),
)
class RunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    action_permissions = {"create": roles.RUN, "cancel": roles.RUN, "resume": roles.RUN}
    action_permissions |= {
        "baseline": roles.SET_BASELINE,
        "destroy": roles.DELETE_RUN,
        "signoff_request": roles.REQUEST_SIGNOFF,
        "signoff_approve": roles.APPROVE,
        "signoff_reject": roles.APPROVE,
    }
    queryset = (
        Run.objects.select_related("suite_version__suite", "created_by")
        .prefetch_related(_arms())
        .order_by("-created_at", "-id")
    )

    def get_serializer_class(self):
        return s.RunDetailSerializer if self.action == "retrieve" else s.RunSerializer

    def filter_queryset(self, queryset):
        if self.action != "list":
            return queryset
        filters = query(self.request, s.RunFilter)
        if "suite" in filters:
            queryset = queryset.filter(suite_version__suite_id=filters["suite"])
        if "status" in filters:
            queryset = queryset.filter(status=filters["status"])
        return queryset

    @extend_schema(
        operation_id="run_create",
        summary="Start a run",
        description="A run of the suite's version (default: its latest) with the given arms; it is "
        "queued at once and starts when a worker takes it. Poll `GET /api/v1/runs/{id}/` for progress.",
        tags=["runs"],
        request=s.RunCreateInput,
        responses={201: s.RunDetailSerializer},
    )
    def create(self, request):
        data = body(request, s.RunCreateInput)
        with service_errors(RunError):
            run = run_create(
                suite_version=data["suite_version"],
                arms=data["arms"],
                repeats=data["repeats"],
                use_cache=data["use_cache"],
                trigger=Trigger.API,
                user=request.user,
                split=data["split"],
            )
        run = self.get_queryset().get(pk=run.pk)
        url = request.build_absolute_uri(reverse("api-v1:run-detail", args=[run.pk]))
        return Response(
            s.RunDetailSerializer(run).data, status=status.HTTP_201_CREATED, headers={"Location": url}
        )

    @extend_schema(
        operation_id="run_summary",
        summary="A run's arm summaries and its regressions against the baseline",
        tags=["runs"],
        responses=s.RunSummarySerializer,
    )
    @action(detail=True, methods=["get"], pagination_class=None)
    def summary(self, request, pk=None):
        from evaluations.jsonsafe import json_ready

        run = self.get_object()
        arms = []
        for arm, summary in run_arms_with_summaries(run):
            arm.summary_now = json_ready(summary)
            arms.append(arm)
        regressions = run_regressions(run)
        return Response(s.RunSummarySerializer({"run": run, "arms": arms, "regressions": regressions}).data)

    @extend_schema(
        operation_id="run_results",
        summary="A run's results, by case then arm then sample",
        tags=["runs"],
        parameters=[s.ResultFilter],
        responses=s.ResultSerializer(many=True),
    )
    @action(detail=True, methods=["get"], serializer_class=s.ResultSerializer)
    def results(self, request, pk=None):
        run = self.get_object()
        filters = query(request, s.ResultFilter)
        arm_id = filters.get("arm")
        if arm_id is not None and not run.arms.filter(pk=arm_id).exists():
            raise BadRequest(f"arm: #{arm_id} is not an arm of run #{run.pk} (the run's detail lists them)")
        results = results_for_run(run, arm_id=arm_id, outcome=filters.get("outcome", ""))
        return self.paginated(results, s.ResultSerializer)

    @extend_schema(
        operation_id="run_cancel",
        summary="Cancel a queued or running run",
        tags=["runs"],
        request=None,
        responses={
            200: s.RunDetailSerializer,
            409: OpenApiResponse(s.ErrorSerializer, description="the run had already finished"),
        },
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        run = self.get_object()
        if not run_cancel(run_id=run.pk, user=request.user):
            run.refresh_from_db(fields=["status"])
            raise Conflict(f"run #{run.pk} had already finished ({run.status}): nothing to cancel")
        return Response(s.RunDetailSerializer(self.get_queryset().get(pk=run.pk)).data)

    @extend_schema(
        operation_id="run_resume",
        summary="Resume a stalled run: send its unfinished work to the workers again",
        description="For a queued or running run whose worker is gone (the run's `stall` says so): "
        "sends the start of a queued run, the next step of every batch no live worker holds, and the "
        "finalize when all are scored. Answers already saved are not asked for again; repeating it is "
        "harmless. A worker must be running (`celery -A workers worker -Q llm,scoring`) to take the work.",
        tags=["runs"],
        request=None,
        responses={
            200: s.RunDetailSerializer,
            409: OpenApiResponse(s.ErrorSerializer, description="the run had already finished"),
        },
    )
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        run = self.get_object()
        try:
            run_resume(run_id=run.pk, actor=request.user)
        except RunError as exc:
            raise Conflict(str(exc)) from exc
        return Response(s.RunDetailSerializer(self.get_queryset().get(pk=run.pk)).data)

    @extend_schema(
        operation_id="run_set_baseline",
        summary="Make this finished run its suite's baseline",
        description="Every later run of the suite is compared with it, arm by arm. An override of the "
        "sign-off: refused (403) for a run you started or requested a sign-off of, and (400) for a run "
        "not signed off in place of a signed-off baseline; request a sign-off instead.",
        tags=["runs"],
        request=None,
        responses={
            200: s.BaselineSerializer,
            400: OpenApiResponse(s.ErrorSerializer, description="refused: `detail` says why"),
            403: OpenApiResponse(s.ErrorSerializer, description="your own run: request a sign-off"),
        },
    )
    @action(detail=True, methods=["post"])
    def baseline(self, request, pk=None):
        run = self.get_object()
        suite = run.suite_version.suite
        try:
            with service_errors(BaselineError):
                baseline_set(suite=suite, run=run, user=request.user, override=True)
        except signoff_services.SelfApprovalError as exc:
            raise self._signoff_errors(exc) from None
        return Response(s.BaselineSerializer({"suite": suite, "baseline_run": run.pk}).data)

    @extend_schema(
        operation_id="run_delete",
        summary="Delete a finished run and its results",
        description="Refused (409) for a locked run: signed off, its suite's baseline, not finished "
        "(cancel it first) or with a pending sign-off request.",
        tags=["runs"],
        responses={
            204: None,
            409: OpenApiResponse(s.ErrorSerializer, description="the run is locked: `detail` says why"),
        },
    )
    def destroy(self, request, pk=None):
        run = self.get_object()
        try:
            run_delete(run=run, user=request.user)
        except RunError as exc:
            raise Conflict(str(exc)) from None
        return Response(status=status.HTTP_204_NO_CONTENT)

    # --- sign-off (services/signoffs.py) ---

    @staticmethod
    def _signoff_errors(exc: Exception):
        """The service's refusals as API errors: self-approval 403, bad input 400, a state 409."""
        from rest_framework.exceptions import PermissionDenied

        if isinstance(exc, signoff_services.SelfApprovalError):
            return PermissionDenied(str(exc))
        if isinstance(exc, signoff_services.SignOffError) and exc.field in ("comment", "note", "decision"):
            return BadRequest(str(exc))
        return Conflict(str(exc))

    @extend_schema(
        operation_id="run_signoff",
        summary="A run's sign-off: its status and every request with its approvals and rejections",
        tags=["runs"],
        responses=s.RunSignOffSerializer,
    )
    @action(detail=True, methods=["get"], url_path="signoff", pagination_class=None)
    def signoff(self, request, pk=None):
        from evaluations.selectors.signoffs import run_signoff_state

        return Response(s.RunSignOffSerializer(run_signoff_state(self.get_object())).data)

    @extend_schema(
        operation_id="run_signoff_request",
        summary="Request sign-off of a succeeded run",
        description="The suite's policy (approvals_required) applies; approvers other than who started "
        "the run and who requests the sign-off decide.",
        tags=["runs"],
        request=s.SignOffRequestInput,
        responses={
            201: s.SignOffSerializer,
            409: OpenApiResponse(
                s.ErrorSerializer,
                description="the run is not succeeded, is signed off or has a pending request",
            ),
        },
    )
    @signoff.mapping.post
    def signoff_request(self, request, pk=None):
        from evaluations.selectors.signoffs import signoff_with_counts

        run = self.get_object()
        data = body(request, s.SignOffRequestInput)
        try:
            signoff = signoff_services.signoff_request(run=run, user=request.user, note=data.get("note", ""))
        except signoff_services.SignOffError as exc:
            raise self._signoff_errors(exc) from None
        return Response(
            s.SignOffSerializer(signoff_with_counts(signoff)).data, status=status.HTTP_201_CREATED
        )

    def _decide(self, request, decision: str) -> Response:
        from evaluations.selectors.signoffs import signoff_with_counts

        run = self.get_object()
        data = body(request, s.SignOffDecisionInput)
        pending = run.signoffs.filter(status="pending").first()
        if pending is None:
            raise Conflict(
                f"run #{run.pk} has no pending sign-off request; request one first "
                f"(POST /api/v1/runs/{run.pk}/signoff/)"
            )
        try:
            signoff = signoff_services.signoff_decide(
                signoff=pending, user=request.user, decision=decision, comment=data.get("comment", "")
            )
        except (signoff_services.SignOffError, signoff_services.SelfApprovalError) as exc:
            raise self._signoff_errors(exc) from None
        return Response(s.SignOffSerializer(signoff_with_counts(signoff)).data)

    @extend_schema(
        operation_id="run_signoff_approve",
        summary="Approve the run's pending sign-off",
        description="Refused (403) for who started the run or requested the sign-off. The approval that "
        "meets the policy signs the run off: it becomes the suite's baseline and is locked.",
        tags=["runs"],
        request=s.SignOffDecisionInput,
        responses={
            200: s.SignOffSerializer,
            409: OpenApiResponse(s.ErrorSerializer, description="no pending request, or you decided already"),
        },
    )
    @action(detail=True, methods=["post"], url_path="signoff/approve")
    def signoff_approve(self, request, pk=None):
        return self._decide(request, "approve")

    @extend_schema(
        operation_id="run_signoff_reject",
        summary="Reject the run's pending sign-off (a comment is required)",
        tags=["runs"],
        request=s.SignOffDecisionInput,
        responses={
            200: s.SignOffSerializer,
            409: OpenApiResponse(s.ErrorSerializer, description="no pending request, or you decided already"),
        },
    )
    @action(detail=True, methods=["post"], url_path="signoff/reject")
    def signoff_reject(self, request, pk=None):
        return self._decide(request, "reject")


# --- findings ---------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="Findings, newest first", tags=["findings"], parameters=[s.FindingFilter]),
    retrieve=extend_schema(summary="A finding", tags=["findings"]),
)
class FindingViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    action_permissions = {"acknowledge": roles.ACK_FINDING}
    serializer_class = s.FindingSerializer
    queryset = Finding.objects.select_related(
        "suite", "arm__endpoint", "arm__strategy", "acknowledged_by"
    ).order_by("-created_at", "-id")

    def filter_queryset(self, queryset):
        if self.action != "list":
            return queryset
        filters = query(self.request, s.FindingFilter)
        for field in ("suite", "run", "kind", "severity"):
            if field in filters:
                queryset = queryset.filter(**{field: filters[field]})
        if "open" in filters:
            queryset = queryset.filter(acknowledged_at__isnull=filters["open"])
        return queryset

    @extend_schema(
        operation_id="finding_acknowledge",
        summary="Acknowledge a finding, with a comment",
        tags=["findings"],
        request=s.AcknowledgeInput,
        responses=s.FindingSerializer,
    )
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, pk=None):
        finding = self.get_object()
        data = body(request, s.AcknowledgeInput)
        finding = finding_acknowledge(finding=finding, user=request.user, comment=data.get("comment", ""))
        return Response(s.FindingSerializer(finding).data)


# --- schedules --------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="Schedules", tags=["schedules"], parameters=[s.ScheduleFilter]),
    retrieve=extend_schema(summary="A schedule", tags=["schedules"]),
)
class ScheduleViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    action_permissions = {
        "create": roles.SCHEDULE,
        "partial_update": roles.SCHEDULE,
        "destroy": roles.SCHEDULE,
    }
    serializer_class = s.ScheduleSerializer
    queryset = (
        Schedule.objects.select_related("suite", "suite_version", "created_by")
        .prefetch_related(
            Prefetch("arms", queryset=ScheduleArm.objects.select_related("endpoint", "strategy"))
        )
        .order_by("suite__name", "name")
    )
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def filter_queryset(self, queryset):
        if self.action != "list":
            return queryset
        filters = query(self.request, s.ScheduleFilter)
        if "suite" in filters:
            queryset = queryset.filter(suite_id=filters["suite"])
        return queryset

    @staticmethod
    def _resolve(suite: Suite, data: dict) -> dict:
        if "arms" in data:
            data["arms"] = s.resolve_arms(data["arms"])
        if data.get("suite_version") is not None:
            data["suite_version"] = s.resolve_version(suite, data["suite_version"])
        return data

    def _answer(self, schedule: Schedule, code: int = status.HTTP_200_OK) -> Response:
        return Response(s.ScheduleSerializer(self.get_queryset().get(pk=schedule.pk)).data, status=code)

    @extend_schema(
        operation_id="schedule_create",
        summary="Schedule runs of a suite (cron, nightly by default)",
        tags=["schedules"],
        request=s.ScheduleInput,
        responses={201: s.ScheduleSerializer},
    )
    def create(self, request):
        data = body(request, s.ScheduleInput)
        suite = Suite.objects.filter(pk=data.pop("suite")).first()
        if suite is None:
            raise serializers.ValidationError({"suite": "no such suite (GET /api/v1/suites/ lists them)"})
        data = self._resolve(suite, data)
        with service_errors(ScheduleError):
            schedule = schedule_create(suite=suite, user=request.user, **data)
        return self._answer(schedule, status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="schedule_update",
        summary="Change a schedule (any of its fields)",
        tags=["schedules"],
        request=s.ScheduleUpdateInput,
        responses=s.ScheduleSerializer,
    )
    def partial_update(self, request, pk=None):
        schedule = self.get_object()
        data = self._resolve(schedule.suite, body(request, s.ScheduleUpdateInput, partial=True))
        with service_errors(ScheduleError):
            schedule = schedule_update(schedule=schedule, **data, user=request.user)
        return self._answer(schedule)

    @extend_schema(
        operation_id="schedule_delete",
        summary="Delete a schedule (its runs stay)",
        tags=["schedules"],
        responses={204: None},
    )
    def destroy(self, request, pk=None):
        with service_errors(ScheduleError):
            schedule_delete(schedule=self.get_object(), user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- fine-tuning jobs -------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        summary="Fine-tuning jobs, newest first", tags=["finetunes"], parameters=[s.FineTuneFilter]
    ),
    retrieve=extend_schema(
        summary="A fine-tuning job: status, progress, losses, the hosted backend's events and checkpoints",
        tags=["finetunes"],
    ),
)
class FineTuneViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """Fine-tuning jobs, as on the fine-tuning page: the page's role starts and cancels them, the
    services audit both (finetune.create, finetune.cancel)."""

    action_permissions = {"create": roles.FINETUNE, "cancel": roles.FINETUNE}
    queryset = FineTuneJob.objects.select_related(
        "suite_version__suite",
        "base_endpoint",
        "endpoint",
        "created_by",
        "teacher_endpoint",
        "teacher_strategy",
    ).order_by("-created_at", "-id")

    def get_serializer_class(self):
        return s.FineTuneSerializer if self.action == "list" else s.FineTuneDetailSerializer

    def filter_queryset(self, queryset):
        if self.action != "list":
            return queryset
        filters = query(self.request, s.FineTuneFilter)
        if "suite" in filters:
            queryset = queryset.filter(suite_version__suite_id=filters["suite"])
        if "status" in filters:
            queryset = queryset.filter(status=filters["status"])
        if "backend" in filters:
            if any(f.name == "backend" for f in FineTuneJob._meta.get_fields()):
                queryset = queryset.filter(backend=filters["backend"])
            elif filters["backend"] != "local":
                queryset = queryset.none()  # every job is local before the hosted backend exists
        return queryset

    def _detail(self, job: FineTuneJob, code: int = status.HTTP_200_OK, headers=None) -> Response:
        return Response(
            s.FineTuneDetailSerializer(self.get_queryset().get(pk=job.pk)).data, status=code, headers=headers
        )

    @extend_schema(
        operation_id="finetune_create",
        summary="Start a fine-tuning job",
        description="Fine-tune a base model on the suite's train split (its latest version, or "
        "`suite_version`), or on another `source`: a labelling run's answers (distillation from a "
        "teacher), reviewed answers, or a union. Backend `local`: LoRA on a local base model, trained "
        "by a worker on the `training` queue. Backend `openai`: the base endpoint's OpenAI-compatible "
        "fine-tuning API, with its base URL and key variable. When training succeeds the fine-tuned "
        "endpoint is registered and evaluated next to the base model's prompting ladder (and the "
        "teacher, when distilled): the job's `run`. Poll `GET /api/v1/finetunes/{id}/`.",
        tags=["finetunes"],
        request=s.FineTuneCreateInput,
        responses={
            201: s.FineTuneDetailSerializer,
            400: OpenApiResponse(s.ErrorSerializer, description="`detail` names the field at fault"),
        },
    )
    def create(self, request):
        data = body(request, s.FineTuneCreateInput)
        with service_errors(FineTuneError):
            job = finetune_create(
                suite_version=data["suite_version"],
                base_endpoint=data["base_endpoint"],
                hyperparameters=data["hyperparameters"],
                user=request.user,
                backend=data["backend"],
                source=data["source"],
            )
        url = request.build_absolute_uri(reverse("api-v1:finetune-detail", args=[job.pk]))
        return self._detail(job, status.HTTP_201_CREATED, headers={"Location": url})

    @extend_schema(
        operation_id="finetune_cancel",
        summary="Cancel a queued or training job",
        tags=["finetunes"],
        request=None,
        responses={
            200: s.FineTuneDetailSerializer,
            409: OpenApiResponse(s.ErrorSerializer, description="the job had already finished"),
        },
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        job = self.get_object()
        if not finetune_cancel(job_id=job.pk, user=request.user):
            job.refresh_from_db(fields=["status"])
            raise Conflict(f"fine-tune #{job.pk} had already finished ({job.status}): nothing to cancel")
        return self._detail(job)
