"""`/api/v1/suites/<id>/knowledge/`: a suite's knowledge documents (what the `rag` strategies retrieve
from). `GET` lists the latest version's documents (`?version=N` another's), paginated like the other
v1 lists; `POST` (multipart: one or more `file`, optional `replace`) adds documents as the suite's next
version, all or nothing, with the same permission as a suite upload."""

from __future__ import annotations

from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from evaluations import roles
from evaluations.api.errors import BadRequest
from evaluations.api.pagination import Pagination
from evaluations.api.serializers import ErrorSerializer, SuiteRefSerializer
from evaluations.importers import SourceFile, SuiteFormatError, SuiteValidationError
from evaluations.importers.sources import TOO_LARGE, upload_size_check
from evaluations.models import Suite
from evaluations.selectors.knowledge import knowledge_totals, knowledge_version, version_documents
from evaluations.services.knowledge import knowledge_import


class KnowledgeDocSerializer(serializers.Serializer):
    doc_id = serializers.CharField(help_text="the id cases' metadata.gold_docs refer to")
    title = serializers.CharField()
    source_name = serializers.CharField(help_text="the file it was read from")
    chunks = serializers.IntegerField(source="chunk_count", help_text="passages retrieval ranks")
    chars = serializers.IntegerField(help_text="the length of its text")


class KnowledgeQuery(serializers.Serializer):
    version = serializers.IntegerField(
        required=False, min_value=1, max_value=2_147_483_647, help_text="a version number (default: latest)"
    )


class KnowledgeUploadInput(serializers.Serializer):
    file = serializers.ListField(
        child=serializers.FileField(), help_text="one or more .txt, .md, .jsonl or .csv files (or a zip)"
    )
    replace = serializers.BooleanField(
        required=False,
        default=False,
        help_text="drop the latest version's documents instead of adding to them",
    )


class KnowledgeUploadResult(serializers.Serializer):
    suite = SuiteRefSerializer()
    version = serializers.IntegerField(help_text="the new version's number")
    documents = serializers.IntegerField(help_text="the new version's documents")
    chunks = serializers.IntegerField(help_text="their chunks")
    cases = serializers.IntegerField(help_text="the cases copied from the previous version")
    notes = serializers.ListField(child=serializers.CharField())


SUITE_ID = OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH, description="the suite's id")


class SuiteKnowledgeView(APIView):
    action_permissions = {"get": roles.READ, "post": roles.UPLOAD}
    parser_classes = [MultiPartParser]
    pagination_class = Pagination  # read by the schema generator too: the GET is documented as paginated

    @extend_schema(
        operation_id="suite_knowledge",
        summary="A suite version's knowledge documents, in order",
        description="The latest version's documents (or `?version=N`'s), with their chunk counts and "
        "sizes; empty for a suite without knowledge.",
        tags=["suites"],
        parameters=[SUITE_ID, KnowledgeQuery],
        responses=KnowledgeDocSerializer(many=True),
    )
    def get(self, request, id: int):
        suite = get_object_or_404(Suite, pk=id)
        checked = KnowledgeQuery(data={k: v for k, v in request.query_params.items() if k == "version" and v})
        checked.is_valid(raise_exception=True)
        number = checked.validated_data.get("version")
        version = knowledge_version(suite, number)
        if version is None and number is not None:
            return Response(
                {"detail": f"version: suite {suite.name!r} has no version {number}"},
                status=status.HTTP_404_NOT_FOUND,
            )
        paginator = self.pagination_class()
        documents = version_documents(version) if version is not None else []
        page = paginator.paginate_queryset(documents, request, view=self)
        return paginator.get_paginated_response(KnowledgeDocSerializer(page, many=True).data)

    @extend_schema(
        operation_id="suite_knowledge_upload",
        summary="Add knowledge documents as the suite's next version",
        description="All or nothing: multipart, one or more `file` (.txt and .md: one document each; "
        ".jsonl: one `{id, text, title}` per line; .csv: columns id, text, title; or a zip of them), "
        "optional `replace` (true: the uploaded documents only; false: added to the latest version's, a "
        "document with an existing id replacing it). The new version has the latest version's cases.",
        tags=["suites"],
        parameters=[SUITE_ID],
        request={"multipart/form-data": KnowledgeUploadInput},
        responses={
            201: KnowledgeUploadResult,
            400: OpenApiResponse(
                ErrorSerializer,
                description="the files are not valid knowledge documents: `detail`, and `errors` lists "
                "every problem with its file, line and field",
            ),
            413: OpenApiResponse(ErrorSerializer, description="the upload is larger than the limit"),
        },
    )
    def post(self, request, id: int):
        suite = get_object_or_404(Suite, pk=id)
        limit = settings.FTVP_MAX_UPLOAD_BYTES
        if int(request.META.get("CONTENT_LENGTH") or 0) > limit + 64 * 1024:
            # Refused before the body is read (DRF would spool it to disk first).
            return Response(
                {"detail": TOO_LARGE.format(limit=limit)}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
            )
        uploads = [*request.FILES.getlist("file"), *request.FILES.getlist("files")]
        if not uploads:
            raise BadRequest("file: give at least one 'file' (.txt, .md, .jsonl or .csv)")
        fields = {"replace": request.data["replace"]} if request.data.get("replace") not in (None, "") else {}
        checked = KnowledgeUploadInput(data=fields, partial=True)
        checked.is_valid(raise_exception=True)
        try:
            upload_size_check([(u.name, u.size) for u in uploads], limit=limit)
            version = knowledge_import(
                suite=suite,
                files=[SourceFile(u.name, u.read()) for u in uploads],
                replace=checked.validated_data.get("replace", False),
                user=request.user,
            )
        except SuiteValidationError as exc:
            return Response(
                {"detail": str(exc).splitlines()[0], "errors": [str(e) for e in exc.errors]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        except SuiteFormatError as exc:
            raise BadRequest(str(exc)) from None
        totals = knowledge_totals(version)
        return Response(
            {
                "suite": {"id": suite.pk, "name": suite.name},
                "version": version.number,
                "documents": totals["documents"],
                "chunks": totals["chunks"],
                "cases": version.cases.count(),
                "notes": version.notes,
            },
            status=status.HTTP_201_CREATED,
        )
