"""Who may open which page: login everywhere, then the permission of the user's role.

- `LoginRequiredMiddleware`: Django's (every view needs a logged-in user unless it is marked
  `login_not_required`, like the login page and the admin's login), except the API under /api/:
  there a token or a session is checked by DRF in the view, which answers 401 itself. The API's
  docs page (/api/docs/) is a page like the others.
- `role_required(perm, post=...)`: a page view's permission (evaluations/roles.py), with a stricter
  one for POST when a page both shows something and takes a form (a list with its "add" form).
  A logged-in user without it gets the 403 page, which names the roles that have it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied

from evaluations import roles

API_PREFIX = "/api/"
API_PAGES = ("/api/docs/",)  # pages under /api/: they redirect to the login like every page

# What each permission allows, for the 403 page ("this needs the permission to ...").
PERMISSION_LABELS = {
    roles.READ: "read suites, runs and results",
    roles.UPLOAD: "upload suites",
    roles.EDIT_SUITE: "change a suite's settings",
    roles.EDIT_STRATEGY: "add prompting strategies",
    roles.EDIT_ENDPOINT: "change an endpoint's parameters and prices",
    roles.ADD_ENDPOINT: "register endpoints",
    roles.ENDPOINT_CONNECTION: "change an endpoint's provider, model, base URL or key variable",
    roles.RUN: "start, cancel and re-score runs",
    roles.DELETE_RUN: "delete runs",
    roles.SCHEDULE: "manage schedules",
    roles.FINETUNE: "start and cancel fine-tunes",
    roles.ACK_FINDING: "acknowledge findings",
    roles.REVIEW: "review results",
    roles.REQUEST_SIGNOFF: "request a sign-off",
    roles.APPROVE: "approve or reject sign-offs",
    roles.SET_BASELINE: "set a suite's baseline without a sign-off",
    roles.ALERTS: "manage alert channels",
    roles.MANAGE_USERS: "manage users and their roles",
}


def is_api_path(path: str) -> bool:
    """A path DRF answers for itself (401 without credentials), not a page."""
    return path.startswith(API_PREFIX) and not path.startswith(API_PAGES)


def denied_message(perms: Iterable[str]) -> str:
    """What the 403 page says: what the user may not do and which roles may."""
    perms = list(perms)
    what = " and ".join(PERMISSION_LABELS.get(p, p) for p in perms)
    having = [set(roles.roles_with(p)) for p in perms]
    holders = [name for name in roles.ROLE_NAMES if all(name in h for h in having)]
    who = ", ".join(holders) if holders else "no role"
    return f"This needs the permission to {what} (roles that have it: {who}). Ask an admin for one of them."


def role_required(perm: str | tuple[str, ...], *, post: str | tuple[str, ...] | None = None) -> Callable:
    """Decorate a page view: `perm` for every request, or `post` instead for POST requests.

    Each may be one permission or a tuple of permissions all needed. An anonymous user is sent to
    the login page; a logged-in user without the permission gets a 403 naming the roles that have it.
    """

    def as_tuple(value) -> tuple[str, ...]:
        return (value,) if isinstance(value, str) else tuple(value)

    needed = as_tuple(perm)
    needed_post = as_tuple(post) if post is not None else needed

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            wanted = needed_post if request.method == "POST" else needed
            if not request.user.has_perms(wanted):
                raise PermissionDenied(denied_message(wanted))
            return view(request, *args, **kwargs)

        return wrapper

    return decorator
