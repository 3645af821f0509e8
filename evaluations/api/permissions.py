"""Who may call what in the API: the caller's role (evaluations/roles.py) decides, as on the pages.

A view names the permission each of its actions needs in `action_permissions`: viewsets by action
name (`{"create": roles.RUN, "cancel": roles.RUN}`), plain APIViews by lower-case HTTP method
(`{"post": roles.UPLOAD}`). Reads (GET, HEAD, OPTIONS) without an entry need `roles.READ`; a write
without an entry is refused, so a new write action is closed until someone says who may call it.
An API token acts with its user's roles.
"""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from evaluations import roles


def required_permission(request, view) -> str | None:
    """The permission this request needs, or None when no role may make it."""
    table = getattr(view, "action_permissions", None) or {}
    action = getattr(view, "action", None)
    method = request.method.lower()
    perm = table.get(action) if action else None
    if perm is None:
        perm = table.get(method)
    if perm is None and request.method in SAFE_METHODS:
        perm = roles.READ
    return perm


class RolePermission(BasePermission):
    message = "your role does not allow this; ask an admin for a role that does"

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not user or not user.is_authenticated:
            return False
        method = request.method.lower()
        if method not in view.http_method_names or not hasattr(view, method):
            return True  # a method the view does not serve: DRF answers 405, nothing runs
        perm = required_permission(request, view)
        if perm is None:
            self.message = "no role may do this through the API"
            return False
        if user.has_perm(perm):
            return True
        self.message = (
            f"your role does not allow this (it needs the permission {perm}); "
            f"roles that have it: {', '.join(roles.roles_with(perm)) or 'none'}; ask an admin"
        )
        return False
