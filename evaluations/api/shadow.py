"""API v1: shadow evaluation (docs/capture.md). `GET /api/v1/shadows/` lists the configurations with
their figures, `POST` starts one (the permission that starts runs: it spends model calls);
`GET /api/v1/shadows/<id>/` is one with its daily series; `POST .../enabled/` pauses or resumes it."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from evaluations import roles
from evaluations.api.errors import BadRequest
from evaluations.api.parsers import JsonSafeParser
from evaluations.models import Endpoint, ShadowCompare, Strategy, Suite
from evaluations.selectors.shadow import shadow_configs, shadow_summary
from evaluations.services.shadow import ShadowError, shadow_config_create, shadow_config_set_enabled

SHADOW_ID = OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH, description="the shadow's id")


class ShadowCreateInput(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    live_endpoint = serializers.CharField(help_text="the endpoint whose captured calls are mirrored (name)")
    candidate = serializers.CharField(help_text="the endpoint they are sent to as well (name)")
    share = serializers.FloatField(default=0.1, help_text="the share of live calls mirrored, (0, 1]")
    strategy = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="name[@vN]; empty: the requests as they are"
    )
    compare = serializers.ChoiceField(choices=ShadowCompare.choices, default=ShadowCompare.ASSERTIONS)
    suite = serializers.IntegerField(
        required=False, allow_null=True, default=None, help_text="whose assertions compare the pairs (id)"
    )


class ShadowOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    enabled = serializers.BooleanField()
    summary = serializers.DictField(
        help_text="pairs, judged, errors, agreement_rate, agreement_mean, candidate/live cost per request "
        "and latency p50/p95, window_days, daily: the same per day"
    )


def _endpoint(name: str, field: str) -> Endpoint:
    found = Endpoint.objects.filter(name=name).first()
    if found is None:
        raise BadRequest(f"{field}: no endpoint named {name!r} (GET /api/v1/endpoints/ lists them)")
    return found


def _strategy(spec: str) -> Strategy | None:
    if not spec:
        return None
    name, _, version = spec.partition("@v")
    found = Strategy.objects.filter(name=name, version=int(version) if version.isdigit() else 1).first()
    if found is None:
        raise BadRequest(f"strategy: no strategy {spec!r}")
    return found


def _out(config) -> dict:
    return {
        "id": config.pk,
        "name": config.name,
        "enabled": config.enabled,
        "summary": shadow_summary(config),
    }


class ShadowListView(APIView):
    action_permissions = {"get": roles.READ, "post": roles.RUN}
    parser_classes = [JsonSafeParser]

    @extend_schema(operation_id="shadow_list", summary="Shadow evaluations", tags=["traffic"],
                   responses=ShadowOutput(many=True))  # fmt: skip
    def get(self, request):
        return Response([_out(c) for c in shadow_configs()[:100]])

    @extend_schema(
        operation_id="shadow_create",
        summary="Mirror a share of an endpoint's live calls to a candidate",
        tags=["traffic"],
        request=ShadowCreateInput,
        responses={201: ShadowOutput},
    )
    def post(self, request):
        checked = ShadowCreateInput(data=request.data)
        checked.is_valid(raise_exception=True)
        data = checked.validated_data
        suite = None
        if data["suite"] is not None:
            suite = Suite.objects.filter(pk=data["suite"]).first()
            if suite is None:
                raise BadRequest(f"suite: no suite #{data['suite']}")
        try:
            config = shadow_config_create(
                name=data["name"],
                live_endpoint=_endpoint(data["live_endpoint"], "live_endpoint"),
                candidate=_endpoint(data["candidate"], "candidate"),
                share=data["share"],
                strategy=_strategy(data["strategy"]),
                compare=data["compare"],
                suite=suite,
                user=request.user,
            )
        except ShadowError as exc:
            raise BadRequest(str(exc)) from None
        return Response(_out(config), status=status.HTTP_201_CREATED)


class ShadowDetailView(APIView):
    action_permissions = {"get": roles.READ}

    @extend_schema(operation_id="shadow_detail", summary="A shadow evaluation's figures", tags=["traffic"],
                   parameters=[SHADOW_ID], responses=ShadowOutput)  # fmt: skip
    def get(self, request, id: int):
        return Response(_out(get_object_or_404(shadow_configs(), pk=id)))


class ShadowEnabledInput(serializers.Serializer):
    enabled = serializers.BooleanField(
        help_text="false pauses the shadow; true resumes it from the next call"
    )


class ShadowEnableView(APIView):
    action_permissions = {"post": roles.RUN}
    parser_classes = [JsonSafeParser]

    @extend_schema(operation_id="shadow_set_enabled", summary="Pause or resume a shadow", tags=["traffic"],
                   parameters=[SHADOW_ID], request=ShadowEnabledInput, responses=ShadowOutput)  # fmt: skip
    def post(self, request, id: int):
        config = get_object_or_404(shadow_configs(), pk=id)
        checked = ShadowEnabledInput(data=request.data)
        checked.is_valid(raise_exception=True)
        enabled = checked.validated_data["enabled"]
        return Response(_out(shadow_config_set_enabled(config=config, enabled=enabled, user=request.user)))
