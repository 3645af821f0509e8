"""Roles: Django groups with permissions. One place says which role may do what.

viewer   reads everything (pages, charts, exports, the API's GETs, the audit history)
editor   suites (upload, settings, thresholds), strategies, endpoints' generation params and prices,
         runs (start, cancel, re-score, delete), schedules, fine-tunes, acknowledging findings,
         requesting a sign-off
reviewer reviews results (verdicts, corrected outputs, comments)
approver approves or rejects sign-offs
admin    everything above, plus endpoints (create, delete, provider, model, base URL, key variable
         names), alert channels, setting a baseline without a sign-off and the sign-off policy, users
         and roles

Each role includes the viewer's reads, so one group is enough for a user; a user may hold several.
`roles_bootstrap()` makes the groups match this table exactly; it runs after every `migrate` (a
post_migrate receiver) and as `manage.py bootstrap_roles`. Superusers hold every permission.
"""

from __future__ import annotations

from django.apps import apps as global_apps

# The permissions views, the API and services check, by what they allow.
READ = "evaluations.view_suite"
UPLOAD = "evaluations.add_suiteversion"
EDIT_SUITE = "evaluations.change_suite"
EDIT_STRATEGY = "evaluations.add_strategy"
EDIT_ENDPOINT = "evaluations.change_endpoint"  # generation params, prices, concurrency, timeout
ADD_ENDPOINT = "evaluations.add_endpoint"
ENDPOINT_CONNECTION = "evaluations.change_endpoint_connection"  # provider, model, base_url, api_key_env
RUN = "evaluations.add_run"  # start, cancel, resume, re-score
DELETE_RUN = "evaluations.delete_run"
SCHEDULE = "evaluations.change_schedule"
FINETUNE = "evaluations.add_finetunejob"
ACK_FINDING = "evaluations.change_finding"
REVIEW = "evaluations.add_review"
REQUEST_SIGNOFF = "evaluations.add_signoff"
APPROVE = "evaluations.approve_signoff"
SET_BASELINE = "evaluations.set_baseline"
ALERTS = "evaluations.change_alertchannel"
MANAGE_USERS = "auth.change_user"

ROLE_NAMES = ("viewer", "editor", "reviewer", "approver", "admin")

# Models whose rows every role may read (their view_ permission).
_READABLE = (
    "suite", "suiteversion", "case", "endpoint", "strategy", "run", "arm", "batch", "result", "scoring",
    "finetunejob", "finding", "schedule", "schedulearm", "trendpoint", "alertchannel", "alertdelivery",
    "review", "signoff", "approval", "auditevent",
)  # fmt: skip

_EDITOR = (
    "add_suite", "change_suite", "delete_suite",
    "add_suiteversion", "add_case",
    "add_strategy", "change_strategy",
    "change_endpoint",
    "add_run", "change_run", "delete_run",
    "add_schedule", "change_schedule", "delete_schedule",
    "add_schedulearm", "change_schedulearm", "delete_schedulearm",
    "add_finetunejob", "change_finetunejob",
    "change_finding",
    "add_signoff",
)  # fmt: skip

_REVIEWER = ("add_review", "change_review")
_APPROVER = ("approve_signoff", "add_approval")
_ADMIN_AUTH = (
    "auth.view_user", "auth.add_user", "auth.change_user", "auth.delete_user",
    "auth.view_group", "auth.change_group",
)  # fmt: skip
# Never given to a role (only code writes them): the audit chain's rows and its head.
_CODE_ONLY = {"add_auditevent", "change_auditevent", "delete_auditevent", "change_audithead", "add_audithead"}


def role_permissions() -> dict[str, set[str]]:
    """Role name -> "app_label.codename" permissions."""
    view = {f"evaluations.view_{m}" for m in _READABLE}
    editor = view | {f"evaluations.{c}" for c in _EDITOR}
    return {
        "viewer": view,
        "editor": editor,
        "reviewer": view | {f"evaluations.{c}" for c in _REVIEWER},
        "approver": view | {f"evaluations.{c}" for c in _APPROVER},
        "admin": None,  # filled in by roles_bootstrap: every evaluations permission but the code-only ones
    }


def roles_bootstrap(*, apps=global_apps, using: str = "default") -> dict[str, int]:
    """Create the role groups (and any missing permissions) and set each group's permissions to the
    table above, exactly. Idempotent. Returns role -> number of permissions."""
    from django.contrib.auth.management import create_permissions

    for config in apps.get_app_configs():
        if config.label in ("evaluations", "auth", "contenttypes"):
            # A migration's app configs are stubs without a models module; create_permissions skips
            # those unless told otherwise (Django's documented recipe).
            stub = getattr(config, "models_module", None) is None
            if stub:
                config.models_module = True
            try:
                create_permissions(config, verbosity=0, apps=apps, using=using)
            finally:
                if stub:
                    config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    perms = {
        f"{app}.{code}": pk
        for pk, app, code in Permission.objects.using(using).values_list(
            "pk", "content_type__app_label", "codename"
        )
    }
    table = role_permissions()
    table["admin"] = {
        name for name in perms if name.startswith("evaluations.") and name.split(".", 1)[1] not in _CODE_ONLY
    } | set(_ADMIN_AUTH)
    counts = {}
    for role in ROLE_NAMES:
        wanted = table[role]
        missing = sorted(name for name in wanted if name not in perms)
        if missing:
            raise LookupError(f"role {role}: no such permission(s) {', '.join(missing)}")
        group, _ = Group.objects.using(using).get_or_create(name=role)
        group._ftvp_bootstrap = True  # not a role change a person made: no audit event
        group.permissions.set([perms[name] for name in wanted])
        counts[role] = len(wanted)
    return counts


def user_roles(user) -> list[str]:
    """The role names a user holds ("admin" for a superuser)."""
    if not getattr(user, "is_authenticated", False):
        return []
    names = [g.name for g in user.groups.all() if g.name in ROLE_NAMES]
    if user.is_superuser and "admin" not in names:
        names.append("admin")
    return sorted(names, key=ROLE_NAMES.index)


def roles_with(perm: str) -> list[str]:
    """The role names whose groups hold `perm` ("app_label.codename"), in ROLE_NAMES order."""
    from django.contrib.auth.models import Group

    app, _, code = perm.partition(".")
    names = set(
        Group.objects.filter(
            name__in=ROLE_NAMES, permissions__codename=code, permissions__content_type__app_label=app
        ).values_list("name", flat=True)
    )
    return [name for name in ROLE_NAMES if name in names]
