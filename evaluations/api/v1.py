"""API v1: its routes, the decision on a suite, and the suite upload.

`GET /api/v1/suites/<id>/decision[?run=<id>]` returns `SuiteDecision.to_dict()`, made JSON-safe
(`json_ready`): the `decision --json` command prints the very same dict. The other resources
(suites, endpoints, strategies, runs, findings, schedules) are the viewsets of `viewsets.py`.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from decimal import Decimal

from django.conf import settings
from django.shortcuts import get_object_or_404
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter
from rest_framework.views import APIView

from evaluations import roles
from evaluations.api import viewsets
from evaluations.api.reviews import RunReviewsView
from evaluations.api.serializers import SuiteUploadFields
from evaluations.decisions import DecisionError, suite_decision
from evaluations.importers import SourceFile, SuiteFormatError, SuiteValidationError
from evaluations.importers.sources import TOO_LARGE, upload_size_check
from evaluations.models import Suite
from evaluations.services.suites import suite_import


def json_ready(value):
    """`value` as plain JSON types: float NaN / infinity become None (JSON has no NaN), numpy
    scalars become Python ones, decimals floats, dates ISO strings and tuples lists."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return float(value) if value.is_finite() else None
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_ready(v) for v in value]
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return json_ready(dataclasses.asdict(value))
    item = getattr(value, "item", None)  # numpy scalars (np.float64, np.bool_, np.int64, ...)
    if callable(item):
        try:
            return json_ready(item())
        except (TypeError, ValueError):
            pass
    return str(value)


def decision_payload(suite: Suite, *, run_id: int | None = None) -> dict:
    """The decision on the suite (its latest finished run, or `run_id`) as a JSON-ready dict.

    Raises `DecisionError` when `run_id` is not a finished run of the suite."""
    return json_ready(suite_decision(suite, run_id=run_id).to_dict())


def parse_run_id(raw: str | int | None) -> int | None:
    """A run id given as text (a query parameter, a command option); ValueError when it is not one."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    text = str(raw).strip()
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{raw!r} is not a run id (a positive whole number)")
    return int(text)


class SuiteDecisionView(APIView):
    action_permissions = {"get": roles.READ}

    @extend_schema(
        operation_id="suite_decision",
        summary="The decision on a suite",
        description=(
            "Is prompting enough, or does fine-tuning pay off? The verdict on the suite's latest "
            "finished run (or the run given), with the evidence, the prompting ladder, costs, "
            "break-even and the checklist. Numbers that cannot be computed are null."
        ),
        parameters=[
            OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH, description="the suite's id"),
            OpenApiParameter(
                "run",
                OpenApiTypes.INT,
                OpenApiParameter.QUERY,
                required=False,
                description="a finished run of the suite (default: its latest finished run)",
            ),
        ],
        responses={
            200: OpenApiResponse(
                response=OpenApiTypes.OBJECT,
                description=(
                    "The decision: suite, run (null without a finished run), train_examples, "
                    "tokens_per_char, verdict (prompting-enough, fine-tune, fine-tune-for-cost, hybrid, "
                    "collect-more-data, inconclusive or no-evidence), title, summary, arm, evidence, "
                    "caveats, cases_needed, ladder, costs, break_even, curves, frontier, checklist, "
                    "profile."
                ),
            ),
            400: OpenApiResponse(
                response=OpenApiTypes.OBJECT,
                description='`run` is not a finished run of the suite: `{"detail": ...}`',
            ),
            404: OpenApiResponse(response=OpenApiTypes.OBJECT, description="no such suite"),
        },
    )
    def get(self, request, id: int):
        suite = get_object_or_404(Suite, pk=id)
        try:
            run_id = parse_run_id(request.query_params.get("run"))
        except ValueError as exc:
            return _bad_request(f"run: {exc}")
        try:
            payload = decision_payload(suite, run_id=run_id)
        except DecisionError as exc:
            return _bad_request(f"run: {exc}")
        return Response(payload)


def upload_suite(request) -> Response:
    """Upload a suite (any supported format) as a new version: multipart `name`, one or more `file`,
    optional `format`, `task_type`, `test_fraction`, `seed`. All or nothing, like the upload page.
    Served as `POST /api/v1/suites/` (viewsets.SuiteViewSet.create, which documents it)."""
    limit = settings.FTVP_MAX_UPLOAD_BYTES
    if int(request.META.get("CONTENT_LENGTH") or 0) > limit + 64 * 1024:
        # Refused before the body is read (DRF would spool it to disk first).
        return Response(
            {"detail": TOO_LARGE.format(limit=limit)},
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    uploads = request.FILES.getlist("file")
    fields = {k: request.data.get(k) for k in ("name", "format", "task_type", "test_fraction", "seed")}
    checked = SuiteUploadFields(data={k: v for k, v in fields.items() if v not in (None, "")})
    if not (fields["name"] or "").strip() or not uploads:
        return _bad_request("give the suite's 'name' and at least one 'file'")
    if not checked.is_valid():
        field, errors = next(iter(checked.errors.items()))
        return _bad_request(f"{field}: {' '.join(str(e) for e in errors)}")
    data = checked.validated_data
    try:
        upload_size_check([(u.name, u.size) for u in uploads], limit=limit)
        version = suite_import(
            name=data["name"].strip(),
            files=[SourceFile(u.name, u.read()) for u in uploads],
            fmt=data.get("format") or None,
            test_fraction=data.get("test_fraction"),
            seed=data.get("seed", 0),
            task_type=data.get("task_type") or None,
            user=request.user,
        )
    except SuiteValidationError as exc:
        return Response(
            {"detail": str(exc).splitlines()[0], "errors": [str(e) for e in exc.errors]},
            status=status.HTTP_400_BAD_REQUEST,
        )
    except SuiteFormatError as exc:
        return _bad_request(str(exc))
    counts = {split: version.cases.filter(split=split).count() for split in ("test", "train")}
    return Response(
        {
            "suite": {"id": version.suite_id, "name": version.suite.name},
            "version": version.number,
            "format": version.source_format,
            "cases": counts,
            "notes": version.notes,
        },
        status=status.HTTP_201_CREATED,
    )


def _bad_request(detail: str) -> Response:
    return Response({"detail": detail}, status=status.HTTP_400_BAD_REQUEST)


app_name = "api-v1"

router = SimpleRouter(trailing_slash=True, use_regex_path=False)
router.register("suites", viewsets.SuiteViewSet, basename="suite")
router.register("endpoints", viewsets.EndpointViewSet, basename="endpoint")
router.register("strategies", viewsets.StrategyViewSet, basename="strategy")
router.register("runs", viewsets.RunViewSet, basename="run")
router.register("findings", viewsets.FindingViewSet, basename="finding")
router.register("schedules", viewsets.ScheduleViewSet, basename="schedule")

urlpatterns = [
    path("suites/<int:id>/decision", SuiteDecisionView.as_view(), name="suite-decision"),
    path("runs/<int:id>/reviews/", RunReviewsView.as_view(), name="run-reviews"),
    *router.urls,
]
