"""Errors of the API, all in one shape: `{"detail": "<field>: <what is wrong, what to do>"}`.

Validation errors keep DRF's per-field messages under `errors` and sum them up in `detail`; the
services' errors (RunError, ScheduleError, BaselineError, Django's ValidationError, ...) become 400s
through `service_errors()`.
"""

from __future__ import annotations

from contextlib import contextmanager

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions, status
from rest_framework.views import exception_handler as drf_exception_handler


class BadRequest(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "invalid request"
    default_code = "invalid"


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "the object is not in a state that allows this"
    default_code = "conflict"


def _flatten(errors, path: str = "") -> list[str]:
    """DRF's nested error structure as "field: message" lines (arms[1].endpoint: ...)."""
    if isinstance(errors, dict):
        lines = []
        for key, value in errors.items():
            if isinstance(key, int):  # ListField errors are keyed by position
                lines += _flatten(value, f"{path}[{key}]")
                continue
            name = "" if key in ("non_field_errors", "detail") else str(key)
            lines += _flatten(value, f"{path}.{name}" if path and name else (name or path))
        return lines
    if isinstance(errors, list):
        if all(not isinstance(e, dict | list) for e in errors):
            return [f"{path}: {e}" if path else str(e) for e in errors]
        lines = []
        for i, value in enumerate(errors):
            if value:
                lines += _flatten(value, f"{path}[{i}]")
        return lines
    return [f"{path}: {errors}" if path else str(errors)]


def exception_handler(exc, context):
    """DRF's handler, with validation errors summed up in `detail` (the shape every error has)."""
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, exceptions.ValidationError):
        data = response.data
        response.data = {"detail": "; ".join(_flatten(data)) or "invalid request", "errors": data}
    return response


@contextmanager
def service_errors(*kinds: type[Exception]):
    """Turn the services' ValueErrors (and Django's ValidationError) into 400s with their message."""
    try:
        yield
    except DjangoValidationError as exc:
        if hasattr(exc, "error_dict"):
            detail = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
        else:
            detail = " ".join(exc.messages)
        raise BadRequest(detail) from None
    except kinds as exc:
        raise BadRequest(str(exc)) from None


def not_found(request, exception=None):
    """The 404 page; under /api/ a JSON error like the API's own (no such path, or an id that is
    not a number)."""
    if request.path.startswith("/api/"):
        from django.http import JsonResponse

        return JsonResponse(
            {"detail": f"no such API path: {request.path} (the API's paths are listed at /api/docs/)"},
            status=404,
        )
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)
