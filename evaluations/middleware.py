"""Every middleware of the app, in the order settings.MIDDLEWARE runs them: the Content Security
Policy header, the 429 page of a locked login, login required everywhere (the API answers 401
itself), and the request's user as the actor of audit events that signals record."""

from __future__ import annotations

from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.middleware import LoginRequiredMiddleware as DjangoLoginRequiredMiddleware
from django.shortcuts import render

from evaluations.access import is_api_path
from evaluations.security import LOCKOUT_ATTR
from evaluations.services.logins import lockout_message
from evaluations.services.user_audit import current_actor

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ]
)


class ContentSecurityPolicyMiddleware:
    """Adds the Content-Security-Policy header to every response that has none."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return response


class LoginThrottleMiddleware:
    """A page whose login was refused for a lockout answers 429 with the login form and the reason."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        wait = getattr(request, LOCKOUT_ATTR, 0)
        if not wait or request.path.startswith("/api/"):
            return response
        locked = render(
            request,
            "evaluations/login.html",
            {"form": AuthenticationForm(request), "locked": lockout_message(wait), "next": ""},
            status=429,
        )
        locked["Retry-After"] = str(wait)
        return locked


class LoginRequiredMiddleware(DjangoLoginRequiredMiddleware):
    """Django's LoginRequiredMiddleware, leaving the API to DRF: a token is only seen by the view's
    authentication, so redirecting an API call without a session to the login page would refuse
    every token."""

    def process_view(self, request, view_func, view_args, view_kwargs):
        if is_api_path(request.path_info):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)


class ActorMiddleware:
    """Makes the request's user the actor of audit events that signals record (role changes)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = current_actor.set(getattr(request, "user", None))
        try:
            return self.get_response(request)
        finally:
            current_actor.reset(token)
