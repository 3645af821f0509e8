"""Captured traffic in the API (docs/traffic.md):

- `/api/v1/capture-tokens/`: list, create (the token is in the answer, once), `<id>/revoke/`; the
  permission to change endpoints' connections (the admin role): a token spends an endpoint's key.
- `/api/v1/traffic/`: the captured calls, filtered and paginated; `<id>/` one with its request and
  response; `summary/` the figures of the traffic page (the same as `manage.py traffic --json`). Reads.
- `POST /api/v1/traffic/to-suite/`: sample calls into a suite's next version and a captured labelling
  run; the permission to upload suites.
"""

from __future__ import annotations

from datetime import timedelta

from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from evaluations import roles
from evaluations.api.errors import BadRequest, service_errors
from evaluations.api.parsers import JsonSafeParser
from evaluations.api.serializers import EndpointRefSerializer, ErrorSerializer, JsonReady
from evaluations.api.viewsets import ApiViewSet, body, query
from evaluations.models import CaptureToken, Suite, SuiteVersion, TrafficCall, TrafficKind
from evaluations.selectors import traffic as reads
from evaluations.services.capture_tokens import CaptureTokenError, capture_token_create, capture_token_revoke
from evaluations.services.traffic_suite import (
    MAX_SAMPLE,
    TrafficSuiteError,
    captured_answers_apply,
    traffic_to_suite,
)

MAX_ID = 2**63 - 1


# --- capture tokens ----------------------------------------------------------------------------------


class CaptureTokenSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    prefix = serializers.CharField(help_text="the token's first 12 characters, to recognise it")
    endpoints = serializers.SerializerMethodField()
    rate_per_minute = serializers.IntegerField(help_text="calls a minute (per proxy process); 0: no limit")
    tags = serializers.ListField(child=serializers.CharField())
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)
    calls = serializers.IntegerField(source="call_count", default=None, allow_null=True)

    @extend_schema_field(EndpointRefSerializer(many=True))
    def get_endpoints(self, obj) -> list:
        return [{"id": e.pk, "name": e.name} for e in obj.endpoints.all()]


class CaptureTokenCreatedSerializer(CaptureTokenSerializer):
    token = serializers.CharField(help_text="the token itself: shown this once, never again")


class CaptureTokenInput(serializers.Serializer):
    name = serializers.CharField(max_length=100, help_text="the application, e.g. 'support-bot'")
    endpoints = serializers.ListField(
        child=serializers.CharField(max_length=100), min_length=1, max_length=100,
        help_text="the names (or ids) of the endpoints it may call",
    )  # fmt: skip
    rate_per_minute = serializers.IntegerField(required=False, default=600, min_value=0, max_value=1_000_000)
    tags = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, default=list, max_length=20,
        help_text="tags every call it makes is recorded with",
    )  # fmt: skip
    expires_in_days = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=3650, help_text="empty: it does not expire"
    )


@extend_schema_view(list=extend_schema(summary="Capture tokens, newest first", tags=["traffic"]))
class CaptureTokenViewSet(mixins.ListModelMixin, ApiViewSet):
    action_permissions = {
        "list": roles.ENDPOINT_CONNECTION,
        "create": roles.ENDPOINT_CONNECTION,
        "revoke": roles.ENDPOINT_CONNECTION,
    }
    queryset = CaptureToken.objects.none()
    serializer_class = CaptureTokenSerializer

    def get_queryset(self):
        return reads.capture_tokens()

    @extend_schema(
        operation_id="capture_tokens_create",
        summary="Create a capture token (shown once)",
        description="The answer's `token` is the only time the token is shown; ftvp keeps its SHA-256.",
        tags=["traffic"],
        request=CaptureTokenInput,
        responses={
            201: CaptureTokenCreatedSerializer,
            400: OpenApiResponse(ErrorSerializer, description="`detail` names the field at fault"),
        },
    )
    def create(self, request):
        data = body(request, CaptureTokenInput)
        endpoints = [int(e) if e.isdigit() else e for e in data["endpoints"]]
        days = data.get("expires_in_days")
        with service_errors(CaptureTokenError):
            row, token = capture_token_create(
                name=data["name"], endpoints=endpoints, rate_per_minute=data["rate_per_minute"],
                tags=data["tags"], expires_at=timezone.now() + timedelta(days=days) if days else None,
                user=request.user,
            )  # fmt: skip
        payload = dict(CaptureTokenSerializer(reads.capture_tokens().get(pk=row.pk)).data)
        return Response({**payload, "token": token}, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="capture_tokens_revoke",
        summary="Revoke a capture token for good",
        tags=["traffic"],
        request=None,
        responses={200: CaptureTokenSerializer},
    )
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        row = get_object_or_404(CaptureToken, pk=pk)
        capture_token_revoke(token=row, user=request.user)
        return Response(CaptureTokenSerializer(reads.capture_tokens().get(pk=row.pk)).data)


# --- traffic ----------------------------------------------------------------------------------------


class TrafficCallSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    call_id = serializers.CharField()
    application = serializers.CharField(help_text="the capture token's name when called")
    endpoint = serializers.CharField(source="endpoint_name")
    kind = serializers.CharField(help_text="chat | embeddings")
    model = serializers.CharField()
    stream = serializers.BooleanField()
    status = serializers.IntegerField(help_text="the HTTP status returned")
    error = serializers.CharField()
    prompt_tokens = serializers.IntegerField(allow_null=True)
    completion_tokens = serializers.IntegerField(allow_null=True)
    latency_ms = serializers.FloatField(allow_null=True)
    cost = serializers.FloatField(allow_null=True, help_text="USD at the endpoint's prices when called")
    tags = serializers.ListField(child=serializers.CharField())
    started_at = serializers.DateTimeField()


class TrafficCallDetailSerializer(JsonReady, TrafficCallSerializer):
    request = serializers.JSONField(help_text="the request body, redacted")
    response = serializers.JSONField(help_text="the response (a stream: assembled), redacted")


class TrafficFilterInput(serializers.Serializer):
    endpoint = serializers.CharField(required=False, max_length=100, help_text="the endpoint's name")
    tag = serializers.CharField(required=False, max_length=100)
    status = serializers.ChoiceField(required=False, choices=list(reads.STATUSES))
    kind = serializers.ChoiceField(required=False, choices=TrafficKind.values)
    date_from = serializers.DateField(required=False, help_text="from this day (inclusive)")
    date_to = serializers.DateField(required=False, help_text="to this day (inclusive)")

    def validate(self, attrs):
        if attrs.get("date_from") and attrs.get("date_to") and attrs["date_from"] > attrs["date_to"]:
            raise serializers.ValidationError({"date_from": "after date_to"})
        return attrs


class TrafficSummaryQuery(TrafficFilterInput):
    days = serializers.IntegerField(
        required=False, default=reads.DEFAULT_DAYS, min_value=1, max_value=reads.MAX_DAYS,
        help_text="the window: the last N days, today included",
    )  # fmt: skip


def _filters(data: dict) -> reads.TrafficFilter:
    fields = ("endpoint", "tag", "status", "kind", "date_from", "date_to")
    return reads.TrafficFilter(**{k: data[k] for k in fields if data.get(k)})


@extend_schema_view(
    list=extend_schema(
        summary="Captured calls, newest first", tags=["traffic"], parameters=[TrafficFilterInput]
    ),
    retrieve=extend_schema(
        summary="A captured call with its request and response", tags=["traffic"],
        responses=TrafficCallDetailSerializer,
    ),
)  # fmt: skip
class TrafficViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    queryset = TrafficCall.objects.none()

    def get_queryset(self):
        if self.action == "list":
            return reads.traffic_calls(_filters(query(self.request, TrafficFilterInput)))
        return TrafficCall.objects.all()

    def get_serializer_class(self):
        return TrafficCallSerializer if self.action == "list" else TrafficCallDetailSerializer


class TrafficSummaryView(APIView):
    action_permissions = {"get": roles.READ}

    @extend_schema(
        operation_id="traffic_summary",
        summary="Traffic figures: per day, per endpoint and per tag over a window",
        description="Calls, errors, cost, latency p50/p95 and tokens per request (latency and tokens of "
        "the calls that succeeded), for every day of the window and per endpoint and tag; the same as "
        "the traffic page and `manage.py traffic --json`.",
        tags=["traffic"],
        parameters=[TrafficSummaryQuery],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request):
        data = query(request, TrafficSummaryQuery)
        with service_errors(reads.TrafficFilterError):
            return Response(reads.traffic_summary(_filters(data), days=data.get("days", reads.DEFAULT_DAYS)))


class TrafficToSuiteInput(serializers.Serializer):
    suite = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=MAX_ID, help_text="an existing suite's id"
    )
    suite_name = serializers.CharField(
        required=False, allow_blank=True, max_length=200, help_text="or a name: a new suite, or that suite"
    )
    endpoint = serializers.CharField(required=False, max_length=100, help_text="only calls to this endpoint")
    tag = serializers.CharField(required=False, max_length=100, help_text="only calls with this tag")
    date_from = serializers.DateField(required=False)
    date_to = serializers.DateField(required=False)
    sample_size = serializers.IntegerField(
        min_value=1, max_value=MAX_SAMPLE, help_text="distinct inputs to take"
    )
    seed = serializers.CharField(required=False, default="0", max_length=100, help_text="the sample's seed")
    test_share = serializers.FloatField(
        required=False, default=0.2, min_value=0.0, max_value=1.0,
        help_text="the share of inputs in the test split, by a hash of the input",
    )  # fmt: skip

    def validate(self, attrs):
        if not attrs.get("suite") and not (attrs.get("suite_name") or "").strip():
            raise serializers.ValidationError({"suite": "give a suite's id or a suite_name"})
        if attrs.get("date_from") and attrs.get("date_to") and attrs["date_from"] > attrs["date_to"]:
            raise serializers.ValidationError({"date_from": "after date_to"})
        return attrs


class TrafficToSuiteArmSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    endpoint = serializers.CharField()


class TrafficToSuiteOutcomeSerializer(serializers.Serializer):
    suite = serializers.DictField(help_text="{id, name}")
    suite_version = serializers.IntegerField()
    run = serializers.IntegerField(allow_null=True, help_text="the captured labelling run (train cases)")
    test_run = serializers.IntegerField(
        allow_null=True, help_text="the test cases' captured answers, to review (never a decision's run)"
    )
    arms = TrafficToSuiteArmSerializer(many=True)
    matched = serializers.IntegerField(help_text="calls matching the filters")
    sampled = serializers.IntegerField(help_text="new cases")
    train = serializers.IntegerField()
    test = serializers.IntegerField()
    duplicates = serializers.IntegerField(help_text="calls skipped: input already taken or in the suite")
    skipped = serializers.IntegerField(help_text="calls without messages or an answer")


class TrafficToSuiteView(APIView):
    action_permissions = {"post": roles.UPLOAD}
    parser_classes = [JsonSafeParser]

    @extend_schema(
        operation_id="traffic_to_suite",
        summary="Sample captured chat calls into a suite's next version",
        description="A seeded sample of the successful chat calls matching the filters, deduplicated, "
        "split train/test by a hash of the input; the cases have no expected output (the captured "
        "answer is in `metadata.captured`). The train cases' captured answers form a finished labelling "
        "run (`run`), unscored, in its review queue, usable as a fine-tune's `run:RUN:ARM:all` or "
        "`reviewed:RUN` source.",
        tags=["traffic"],
        request=TrafficToSuiteInput,
        responses={
            201: TrafficToSuiteOutcomeSerializer,
            400: OpenApiResponse(ErrorSerializer, description="`detail` names the field at fault"),
        },
    )
    def post(self, request):
        data = body(request, TrafficToSuiteInput)
        suite = None
        if data.get("suite"):
            suite = Suite.objects.filter(pk=data["suite"]).first()
            if suite is None:
                raise BadRequest(f"suite: no suite #{data['suite']}")
        with service_errors(TrafficSuiteError, reads.TrafficFilterError):
            outcome = traffic_to_suite(
                suite=suite, suite_name=data.get("suite_name"), filters=_filters(data),
                sample_size=data["sample_size"], seed=data["seed"], test_share=data["test_share"],
                user=request.user, trigger="api",
            )  # fmt: skip
        return Response(outcome.as_dict(), status=status.HTTP_201_CREATED)


class CapturedAnswersInput(serializers.Serializer):
    suite = serializers.IntegerField(min_value=1, help_text="suite id")
    suite_version = serializers.IntegerField(
        min_value=1, help_text="the version made from traffic (its latest)"
    )


class CapturedAnswersOutput(serializers.Serializer):
    suite_version = serializers.IntegerField(help_text="the new version's number")
    expected = serializers.IntegerField(help_text="the new version's cases with an expected output")


class CapturedAnswersApplyView(APIView):
    action_permissions = {"post": roles.UPLOAD}
    parser_classes = [JsonSafeParser]

    @extend_schema(
        operation_id="traffic_answers_apply",
        summary="Make the reviewed captured answers expected outputs",
        description="The suite's next version: the version's cases, each captured answer a reviewer "
        "accepted or corrected (in its captured runs' review queues) becoming its case's expected output.",
        tags=["traffic"],
        request=CapturedAnswersInput,
        responses={201: CapturedAnswersOutput, 400: ErrorSerializer},
    )
    def post(self, request):
        data = body(request, CapturedAnswersInput)
        version = SuiteVersion.objects.filter(suite_id=data["suite"], number=data["suite_version"]).first()
        if version is None:
            raise BadRequest(f"suite_version: suite #{data['suite']} has no version {data['suite_version']}")
        with service_errors(TrafficSuiteError):
            target = captured_answers_apply(version=version, user=request.user)
        expected = target.cases.exclude(expected=None).count()
        return Response(
            {"suite_version": target.number, "expected": expected}, status=status.HTTP_201_CREATED
        )
