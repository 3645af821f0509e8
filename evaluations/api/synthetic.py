"""Synthetic examples in the API: `POST /api/v1/suites/<id>/synthetic/` starts a generation (`GET` lists
the suite's); `/api/v1/synthetic/` lists every generation, `/api/v1/synthetic/<id>/` is one with its
candidates; `review/`, `accept-all/`, `promote/` and `cancel/` are the page's actions. Reads need the
viewer's role, writes the permission to upload suites (the end of it is a new suite version)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from evaluations import roles
from evaluations.api.errors import BadRequest, Conflict, service_errors
from evaluations.api.pagination import Pagination
from evaluations.api.parsers import JsonSafeParser
from evaluations.api.serializers import EndpointRefSerializer, ErrorSerializer, SuiteRefSerializer, id_field
from evaluations.api.viewsets import ApiViewSet, body, query
from evaluations.models import Endpoint, Strategy, Suite, SyntheticGeneration
from evaluations.selectors import synthetic as reads
from evaluations.services.synthetic import (
    MAX_N,
    MAX_SEEDS,
    SyntheticError,
    candidate_review,
    candidates_accept_all,
    synthetic_cancel,
    synthetic_create,
    synthetic_promote,
)

MAX_ID = 2**63 - 1


class SyntheticCandidateSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    position = serializers.IntegerField(help_text="its place in the model's answers, from 0")
    input = serializers.JSONField(help_text="a string, or a list of chat messages {role, content}")
    expected = serializers.JSONField(allow_null=True)
    status = serializers.CharField(help_text="pending | accepted | rejected | dropped")
    drop_reason = serializers.CharField(help_text="dropped ones: duplicate | test-copy")
    nearest_similarity = serializers.FloatField(
        allow_null=True, help_text="the highest cosine similarity to a case or an earlier candidate"
    )
    nearest = serializers.CharField(help_text="what that was: test:KEY, seed:KEY, train:KEY or #POSITION")
    edited = serializers.BooleanField()
    reviewer = serializers.CharField(source="reviewer.username", allow_null=True, default=None)
    reviewed_at = serializers.DateTimeField(allow_null=True)
    case_key = serializers.CharField(help_text="the train case it became on promotion")


class SyntheticStrategySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    version = serializers.IntegerField()


class SyntheticCountsSerializer(serializers.Serializer):
    pending = serializers.IntegerField()
    accepted = serializers.IntegerField()
    rejected = serializers.IntegerField()
    dropped = serializers.IntegerField()


class SyntheticGenerationSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    suite = serializers.SerializerMethodField()
    suite_version = serializers.IntegerField(source="suite_version.number")
    endpoint = serializers.SerializerMethodField()
    strategy = serializers.SerializerMethodField()
    seed_keys = serializers.ListField(child=serializers.CharField())
    requested = serializers.IntegerField(help_text="N: the candidates asked for")
    threshold = serializers.FloatField()
    status = serializers.CharField(help_text="queued | running | succeeded | failed | cancelled")
    calls = serializers.IntegerField()
    generated = serializers.IntegerField(help_text="pairs read from the answers")
    dropped_duplicates = serializers.IntegerField()
    dropped_test_copies = serializers.IntegerField()
    unparseable = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    cost = serializers.FloatField(allow_null=True, help_text="USD; null until it has run")
    error = serializers.CharField()
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    promoted_version = serializers.IntegerField(
        source="promoted_version.number", allow_null=True, default=None,
        help_text="the suite version its accepted candidates became train cases of",
    )  # fmt: skip

    @extend_schema_field(SuiteRefSerializer)
    def get_suite(self, obj) -> dict:
        suite = obj.suite_version.suite
        return {"id": suite.pk, "name": suite.name}

    @extend_schema_field(EndpointRefSerializer)
    def get_endpoint(self, obj) -> dict:
        return {"id": obj.endpoint_id, "name": obj.endpoint.name}

    @extend_schema_field(SyntheticStrategySerializer)
    def get_strategy(self, obj) -> dict:
        return {"id": obj.strategy_id, "name": obj.strategy.name, "version": obj.strategy.version}


class SyntheticDetailSerializer(SyntheticGenerationSerializer):
    counts = serializers.SerializerMethodField()
    candidates = serializers.SerializerMethodField()

    @extend_schema_field(SyntheticCountsSerializer)
    def get_counts(self, obj) -> dict:
        return reads.candidate_counts(obj)

    @extend_schema_field(SyntheticCandidateSerializer(many=True))
    def get_candidates(self, obj) -> list:
        return SyntheticCandidateSerializer(reads.candidates(obj), many=True).data


class SyntheticCreateInput(serializers.Serializer):
    suite_version = serializers.IntegerField(
        min_value=1, max_value=MAX_ID, required=False, allow_null=True,
        help_text="version number; default: the suite's latest version",
    )  # fmt: skip
    seeds = serializers.ListField(
        child=serializers.CharField(max_length=200), min_length=1, max_length=MAX_SEEDS,
        help_text="the keys of the seed train cases (k of them)",
    )  # fmt: skip
    n = serializers.IntegerField(min_value=1, max_value=MAX_N, help_text="the candidates to write")
    endpoint = id_field(help_text="id of the endpoint that writes them")
    strategy = id_field(
        required=False, allow_null=True,
        help_text="id of a version of the synthesize strategy; default: its latest version",
    )  # fmt: skip
    threshold = serializers.FloatField(
        required=False, default=0.92, min_value=0.0, max_value=1.0,
        help_text="cosine similarity above which a candidate is dropped (above 0, at most 1)",
    )  # fmt: skip


class SyntheticReviewInput(serializers.Serializer):
    candidate = id_field(help_text="the candidate's id")
    action = serializers.ChoiceField(choices=["accept", "reject"])
    input = serializers.JSONField(required=False, help_text="accept: the input edited (text or messages)")
    expected = serializers.JSONField(required=False, help_text="accept: the expected output edited")

    def validate(self, attrs):
        from evaluations.api.serializers import _json_safe, _no_nul

        for name in ("input", "expected"):
            if name in attrs:
                _json_safe(attrs[name])
                _no_nul(attrs[name])
        return attrs


class SyntheticFilter(serializers.Serializer):
    suite = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    status = serializers.ChoiceField(
        required=False, choices=["queued", "running", "succeeded", "failed", "cancelled"]
    )


SUITE_ID = OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH, description="the suite's id")


class SuiteSyntheticView(APIView):
    action_permissions = {"get": roles.READ, "post": roles.UPLOAD}
    parser_classes = [JsonSafeParser]
    pagination_class = Pagination

    @extend_schema(
        operation_id="suite_synthetic_list",
        summary="A suite's synthetic-example generations, newest first",
        tags=["synthetic"],
        parameters=[SUITE_ID],
        responses=SyntheticGenerationSerializer(many=True),
    )
    def get(self, request, id: int):
        suite = get_object_or_404(Suite, pk=id)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(reads.generations(suite), request, view=self)
        return paginator.get_paginated_response(SyntheticGenerationSerializer(page, many=True).data)

    @extend_schema(
        operation_id="suite_synthetic_create",
        summary="Generate synthetic examples from seed train cases",
        description="Queues a generation (a worker on the `llm` queue): the endpoint writes `n` new "
        "input/expected pairs like the seed train cases with the chosen version of the synthesize "
        "prompt; near-duplicates and copies of test cases are dropped and counted, the rest wait for "
        "review as candidates. Poll `GET /api/v1/synthetic/{id}/`.",
        tags=["synthetic"],
        parameters=[SUITE_ID],
        request=SyntheticCreateInput,
        responses={
            201: SyntheticDetailSerializer,
            400: OpenApiResponse(ErrorSerializer, description="`detail` names the field at fault"),
        },
    )
    def post(self, request, id: int):
        suite = get_object_or_404(Suite, pk=id)
        data = body(request, SyntheticCreateInput)
        number = data.get("suite_version")
        version = suite.versions.filter(number=number).first() if number else suite.latest_version()
        if version is None:
            raise BadRequest(
                f"suite_version: suite {suite.name!r} has no version {number}"
                if number
                else f"suite {suite.name!r} has no version yet: upload one first"
            )
        endpoint = Endpoint.objects.filter(pk=data["endpoint"]).first()
        if endpoint is None:
            raise BadRequest(f"endpoint: no endpoint #{data['endpoint']} (GET /api/v1/endpoints/ lists them)")
        strategy = None
        if data.get("strategy"):
            strategy = Strategy.objects.filter(pk=data["strategy"]).first()
            if strategy is None:
                raise BadRequest(f"strategy: no strategy #{data['strategy']}")
        with service_errors(SyntheticError):
            generation = synthetic_create(
                suite_version=version, endpoint=endpoint, seed_keys=data["seeds"], n=data["n"],
                strategy=strategy, threshold=data["threshold"], user=request.user,
            )  # fmt: skip
        url = request.build_absolute_uri(reverse("api-v1:synthetic-detail", args=[generation.pk]))
        return Response(
            SyntheticDetailSerializer(reads.generation(generation.pk)).data,
            status=status.HTTP_201_CREATED,
            headers={"Location": url},
        )


@extend_schema_view(
    list=extend_schema(
        summary="Synthetic-example generations", tags=["synthetic"], parameters=[SyntheticFilter]
    ),
    retrieve=extend_schema(
        summary="A generation with its candidates (pending first)",
        tags=["synthetic"],
        responses=SyntheticDetailSerializer,
    ),
)
class SyntheticViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    action_permissions = {
        "review": roles.UPLOAD,
        "accept_all": roles.UPLOAD,
        "promote": roles.UPLOAD,
        "cancel": roles.UPLOAD,
    }
    queryset = SyntheticGeneration.objects.none()

    def get_queryset(self):
        return reads.generations()

    def get_serializer_class(self):
        return SyntheticGenerationSerializer if self.action == "list" else SyntheticDetailSerializer

    def filter_queryset(self, queryset):
        if self.action != "list":
            return queryset
        filters = query(self.request, SyntheticFilter)
        if "suite" in filters:
            queryset = queryset.filter(suite_version__suite_id=filters["suite"])
        if "status" in filters:
            queryset = queryset.filter(status=filters["status"])
        return queryset

    def _detail(self, generation_id: int) -> Response:
        return Response(SyntheticDetailSerializer(reads.generation(generation_id)).data)

    @extend_schema(
        operation_id="synthetic_review",
        summary="Accept (optionally edited) or reject a candidate",
        tags=["synthetic"],
        request=SyntheticReviewInput,
        responses={
            200: SyntheticDetailSerializer,
            400: OpenApiResponse(ErrorSerializer, description="`detail` says what cannot be done"),
        },
    )
    @action(detail=True, methods=["post"])
    def review(self, request, pk=None):
        generation = self.get_object()
        data = body(request, SyntheticReviewInput)
        if not generation.candidates.filter(pk=data["candidate"]).exists():
            raise BadRequest(f"candidate: generation #{generation.pk} has no candidate #{data['candidate']}")
        with service_errors(SyntheticError):
            candidate_review(
                candidate_id=data["candidate"], action=data["action"], input=data.get("input"),
                expected=data.get("expected"), user=request.user,
            )  # fmt: skip
        return self._detail(generation.pk)

    @extend_schema(
        operation_id="synthetic_accept_all",
        summary="Accept every pending candidate as it is",
        tags=["synthetic"],
        request=None,
        responses={
            200: SyntheticDetailSerializer,
            400: OpenApiResponse(ErrorSerializer, description="not reviewable (not succeeded, or promoted)"),
        },
    )
    @action(detail=True, methods=["post"], url_path="accept-all", url_name="accept-all")
    def accept_all(self, request, pk=None):
        generation = self.get_object()
        with service_errors(SyntheticError):
            candidates_accept_all(generation_id=generation.pk, user=request.user)
        return self._detail(generation.pk)

    @extend_schema(
        operation_id="synthetic_promote",
        summary="Make the suite's next version with the accepted candidates as train cases",
        description="The new version holds every case of the generation's version unchanged (and its "
        "knowledge documents), then the accepted candidates as train cases `syn-<generation>-<position>`; "
        "never a test case. The generation's `promoted_version` names it.",
        tags=["synthetic"],
        request=None,
        responses={
            200: SyntheticDetailSerializer,
            400: OpenApiResponse(ErrorSerializer, description="nothing accepted, or already promoted"),
        },
    )
    @action(detail=True, methods=["post"])
    def promote(self, request, pk=None):
        generation = self.get_object()
        with service_errors(SyntheticError):
            synthetic_promote(generation_id=generation.pk, user=request.user)
        return self._detail(generation.pk)

    @extend_schema(
        operation_id="synthetic_cancel",
        summary="Cancel a queued or running generation",
        tags=["synthetic"],
        request=None,
        responses={
            200: SyntheticDetailSerializer,
            409: OpenApiResponse(ErrorSerializer, description="the generation had already finished"),
        },
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        generation = self.get_object()
        if not synthetic_cancel(generation_id=generation.pk, user=request.user):
            raise Conflict(f"generation #{generation.pk} had already finished ({generation.status})")
        return self._detail(generation.pk)
