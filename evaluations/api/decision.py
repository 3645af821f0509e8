"""`GET /api/v1/suites/<id>/decision[?run=<id>]`: `SuiteDecision.to_dict()`, made JSON-safe
(`json_ready`); the `decision --json` command prints the very same dict (selectors/decisions.py)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from evaluations import roles
from evaluations.models import Suite
from evaluations.selectors.decisions import DecisionError, decision_payload, parse_run_id


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
                    "profile, selection (how the arms were picked and judged: the rule, split or "
                    "same-cases with a Bonferroni correction, and the cases on each side)."
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


def _bad_request(detail: str) -> Response:
    return Response({"detail": detail}, status=status.HTTP_400_BAD_REQUEST)
