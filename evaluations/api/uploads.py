"""`POST /api/v1/suites/`: a suite upload (any supported format) as a new version, all or nothing."""

from __future__ import annotations

from django.conf import settings
from rest_framework import status
from rest_framework.response import Response

from evaluations.api.serializers import SuiteUploadFields
from evaluations.importers import SourceFile, SuiteFormatError, SuiteValidationError
from evaluations.importers.sources import TOO_LARGE, upload_size_check
from evaluations.services.suites import suite_import


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
