"""Token authentication for the API: `Authorization: Bearer <token>` (or `Token <token>`).

Tokens are created on the API tokens page (/tokens/) or with `manage.py api_token`; only their
SHA-256 is stored (services/tokens.py). The OpenAPI schema documents the scheme as HTTP bearer.
"""

from __future__ import annotations

from drf_spectacular.authentication import BasicScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

KEYWORDS = ("bearer", "token")


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """Authenticates a request by an ftvp API token; no header (or another scheme) means "not me"."""

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].decode("latin-1").lower() not in KEYWORDS:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                "invalid Authorization header: give 'Bearer <token>' (one token, no spaces)"
            )
        try:
            token = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed(
                "invalid Authorization header: the token has characters a token never has"
            ) from None
        # Imported here: DRF imports authentication classes while Django may still be loading apps.
        from evaluations.services.tokens import TokenError, api_token_check

        try:
            row = api_token_check(token=token)
        except TokenError as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from None
        return row.user, row

    def authenticate_header(self, request) -> str:
        # Makes DRF answer 401 (not 403) with a challenge when credentials are missing or wrong.
        return 'Bearer realm="api"'


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "evaluations.api.auth.ApiTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "An ftvp API token, sent as `Authorization: Bearer <token>` (`Token <token>` works too). "
                "Create one on the API tokens page (/tokens/) or with `manage.py api_token`."
            ),
        }


class ThrottledBasicAuthentication(authentication.BasicAuthentication):
    """DRF's Basic auth under login throttling (services/logins.py): a locked username or address
    gets 429 with the reason and Retry-After, not 401. (Counting attempts and clearing a username's
    count on success happen in the authentication backend, security.ThrottledModelBackend, as for
    the pages.)"""

    def authenticate_credentials(self, userid, password, request=None):
        from evaluations.security import LOCKOUT_ATTR
        from evaluations.services.logins import lockout_message

        try:
            return super().authenticate_credentials(userid, password, request)
        except exceptions.AuthenticationFailed:
            wait = getattr(request, LOCKOUT_ATTR, 0) if request is not None else 0
            if wait:
                raise exceptions.Throttled(wait=wait, detail=lockout_message(wait)) from None
            raise


class ThrottledBasicScheme(BasicScheme):
    """The schema documents the throttled Basic auth as HTTP Basic, like DRF's own."""

    target_class = "evaluations.api.auth.ThrottledBasicAuthentication"
