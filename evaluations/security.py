"""Browser-facing security: login throttling (the Content Security Policy header and the 429 page
are middleware: evaluations/middleware.py).

- `middleware.ContentSecurityPolicyMiddleware` puts CONTENT_SECURITY_POLICY on every response (pages, API,
  admin, /api/docs/, error pages, static files). Scripts only from ftvp's own origin, as files: no
  inline script, no event-handler attribute, no eval; no inline style either (the pages set sizes
  from static JS through the CSSOM, which the policy allows). See docs/decisions.md.
- `ThrottledModelBackend` is Django's ModelBackend counting the attempt first (`services.logins`):
  a locked username or address is refused before its password is checked, on every login path
  (the login page, the admin's login, the API's Basic auth). `LoginThrottleMiddleware` turns such a
  refusal on a page into a 429 page that says why (middleware.py); the API answers 429 itself (api/auth.py).
- A receiver logs a lock-out (`user_login_failed`); the backend clears a username's count on a login.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied

from evaluations.services.logins import (
    client_address,
    lockout_message,
    login_attempt_record,
    login_failure_note,
    login_success_record,
)

LOCKOUT_ATTR = "ftvp_login_lockout"  # set on a request whose login was refused: seconds to wait


class ThrottledModelBackend(ModelBackend):
    """ModelBackend that refuses (PermissionDenied: `authenticate` stops there) a username or an
    address locked by too many failed logins, before looking at the password."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(get_user_model().USERNAME_FIELD)
        address = client_address(request) if request else None
        wait = login_attempt_record(username=username, address=address)  # counted before the check
        if wait:
            if request is not None:
                setattr(request, LOCKOUT_ATTR, wait)
            raise PermissionDenied(lockout_message(wait))
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None:
            login_success_record(username=username, address=address)
        return user


def on_login_failed(sender, credentials, request=None, **kwargs):
    if request is not None and getattr(request, LOCKOUT_ATTR, 0):
        return  # refused for a lockout: the password was never checked
    username = credentials.get(get_user_model().USERNAME_FIELD) or credentials.get("username")
    # The attempt was counted before its password was checked: only the warning is left to give.
    login_failure_note(username=username, address=client_address(request) if request else None)
