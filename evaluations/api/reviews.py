"""API v1: a run's human reviews. `GET /api/v1/runs/<id>/reviews/` lists them (newest first, paginated
like the other v1 lists: `?page=`, `?page_size=` up to 500); `POST` saves the caller's review of one of
the run's results (created, or replaced when the caller had reviewed it already), as the review page
does."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from evaluations import roles
from evaluations.api.errors import BadRequest, service_errors
from evaluations.api.pagination import Pagination
from evaluations.api.parsers import JsonSafeParser
from evaluations.api.serializers import id_field
from evaluations.models import Result, Review, Run, Verdict
from evaluations.services.reviews import review_save, reviews_accept_passing

TEXT_LIMIT = 100_000


class ReviewSerializer(serializers.ModelSerializer):
    reviewer = serializers.CharField(
        source="reviewer.username", read_only=True, allow_null=True, help_text="null: a deleted user"
    )

    class Meta:
        model = Review
        fields = ["id", "result", "run", "reviewer", "verdict", "corrected_output", "comment", "created_at",
                  "updated_at"]  # fmt: skip
        read_only_fields = fields


class ReviewInput(serializers.Serializer):
    result = id_field(help_text="a result of this run (its id)")
    verdict = serializers.ChoiceField(
        choices=Verdict.choices,
        help_text="correct, incorrect, corrected (with corrected_output) or comment (with comment)",
    )
    corrected_output = serializers.CharField(
        required=False, allow_blank=True, trim_whitespace=False, max_length=TEXT_LIMIT, default=""
    )
    comment = serializers.CharField(required=False, allow_blank=True, max_length=TEXT_LIMIT, default="")


RUN_ID = OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH, description="the run's id")


class RunReviewsView(APIView):
    action_permissions = {"get": roles.READ, "post": roles.REVIEW}
    parser_classes = [JsonSafeParser]
    pagination_class = Pagination  # read by the schema generator too: the GET is documented as paginated

    @extend_schema(
        operation_id="run_reviews",
        summary="A run's human reviews, newest first",
        tags=["runs"],
        parameters=[RUN_ID],
        responses=ReviewSerializer(many=True),
    )
    def get(self, request, id: int):
        run = get_object_or_404(Run, pk=id)
        reviews = Review.objects.filter(run=run).select_related("reviewer").order_by("-updated_at", "-pk")
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(reviews, request, view=self)
        return paginator.get_paginated_response(ReviewSerializer(page, many=True).data)

    @extend_schema(
        operation_id="run_review_save",
        summary="Review one of the run's results",
        description="Saves the caller's review of the result: 201 when new, 200 when it replaces the "
        "caller's earlier review of it. Each save is recorded in the audit log.",
        tags=["runs"],
        parameters=[RUN_ID],
        request=ReviewInput,
        responses={200: ReviewSerializer, 201: ReviewSerializer},
    )
    def post(self, request, id: int):
        run = get_object_or_404(Run, pk=id)
        checked = ReviewInput(data=request.data)
        checked.is_valid(raise_exception=True)
        data = checked.validated_data
        result = Result.objects.filter(pk=data["result"], arm__run=run).select_related("arm__run").first()
        if result is None:
            raise BadRequest(
                f"result: #{data['result']} is not a result of run #{run.pk} "
                f"(GET /api/v1/runs/{run.pk}/results/ lists them)"
            )
        existed = Review.objects.filter(result=result, reviewer=request.user).exists()
        with service_errors():
            review = review_save(
                result=result,
                reviewer=request.user,
                verdict=data["verdict"],
                corrected_output=data["corrected_output"],
                comment=data["comment"],
            )
        return Response(
            ReviewSerializer(review).data, status=status.HTTP_200_OK if existed else status.HTTP_201_CREATED
        )


class AcceptPassingInput(serializers.Serializer):
    arm = id_field(required=False, allow_null=True, help_text="only this arm's results (its id)")


class AcceptPassingOutput(serializers.Serializer):
    accepted = serializers.IntegerField(help_text="results marked correct by the caller")


class RunAcceptPassingView(APIView):
    """The review shortcut of a labelling run: accept every answer that passed scoring and has no
    verdict yet (the rest stays in the queue)."""

    action_permissions = {"post": roles.REVIEW}
    parser_classes = [JsonSafeParser]

    @extend_schema(
        operation_id="run_reviews_accept_passing",
        summary="Accept every passing, unreviewed result of the run",
        description="Marks each result that passed scoring and that nobody has given a verdict yet as "
        "correct, reviewed by the caller (one audit event). Typical for a labelling run before "
        "distilling it: `POST /api/v1/finetunes/` with `source` `reviewed:RUN` or `run:RUN:ARM`.",
        tags=["runs"],
        parameters=[RUN_ID],
        request=AcceptPassingInput,
        responses={200: AcceptPassingOutput},
    )
    def post(self, request, id: int):
        run = get_object_or_404(Run.objects.select_related("suite_version"), pk=id)
        checked = AcceptPassingInput(data=request.data or {})
        checked.is_valid(raise_exception=True)
        with service_errors():
            accepted = reviews_accept_passing(
                run=run, reviewer=request.user, arm_id=checked.validated_data.get("arm")
            )
        return Response({"accepted": accepted})
