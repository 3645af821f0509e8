"""The Team page (admins only): the users and their roles; add a user, change roles, deactivate."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from evaluations import roles
from evaluations.access import role_required
from evaluations.roles import ROLE_NAMES
from evaluations.selectors.team import team_rows
from evaluations.services.team import (
    TeamError,
    user_create,
    user_deactivate,
    user_reactivate,
    user_roles_set,
)

ROLE_CHOICES = [(name, name) for name in ROLE_NAMES]


class UserCreateForm(forms.Form):
    username = forms.CharField(max_length=150)
    email = forms.EmailField(required=False, label="E-mail (optional)")
    password1 = forms.CharField(
        label="Password",
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="Leave both empty to generate one, shown once on the next page.",
    )
    password2 = forms.CharField(
        label="Password again",
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    roles = forms.MultipleChoiceField(
        choices=ROLE_CHOICES, required=False, widget=forms.CheckboxSelectMultiple, initial=["viewer"]
    )

    def clean(self):
        data = super().clean()
        if data.get("password1", "") != data.get("password2", ""):
            self.add_error("password2", "the two passwords differ")
        return data


class UserRolesForm(forms.Form):
    roles = forms.MultipleChoiceField(choices=ROLE_CHOICES, required=False)


def _render(request: HttpRequest, form: UserCreateForm, created=None, status: int = 200) -> HttpResponse:
    return render(
        request,
        "evaluations/team.html",
        {"rows": team_rows(viewer=request.user), "form": form, "created": created, "role_names": ROLE_NAMES},
        status=status,
    )


@never_cache
@role_required(roles.MANAGE_USERS)
def team(request: HttpRequest) -> HttpResponse:
    form = UserCreateForm(request.POST or None)
    if request.method != "POST":
        return _render(request, form)
    if form.is_valid():
        data = form.cleaned_data
        try:
            user, generated = user_create(
                actor=request.user,
                username=data["username"],
                email=data["email"],
                password=data["password1"],
                role_names=data["roles"],
            )
        except TeamError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            # Rendered, not redirected: a generated password must not pass through the session.
            created = {"user": user, "password": generated}
            return _render(request, UserCreateForm(), created=created)
    return _render(request, form, status=400)


@role_required(roles.MANAGE_USERS)
@require_POST
def team_roles(request: HttpRequest, pk: int) -> HttpResponse:
    member = get_object_or_404(get_user_model(), pk=pk)
    form = UserRolesForm(request.POST)
    if not form.is_valid():
        messages.error(
            request, f"Roles of {member.get_username()} not changed: choose among {', '.join(ROLE_NAMES)}."
        )
        return redirect("evaluations:team")
    try:
        now = user_roles_set(actor=request.user, user=member, role_names=form.cleaned_data["roles"])
    except TeamError as exc:
        messages.error(request, f"Roles of {member.get_username()} not changed: {exc.message}")
    else:
        messages.success(request, f"{member.get_username()} now has: {', '.join(now) or 'no role'}.")
    return redirect("evaluations:team")


@role_required(roles.MANAGE_USERS)
@require_POST
def team_active(request: HttpRequest, pk: int) -> HttpResponse:
    """POST active=0 deactivates the user, active=1 reactivates them."""
    member = get_object_or_404(get_user_model(), pk=pk)
    name = member.get_username()
    try:
        if request.POST.get("active") == "1":
            user_reactivate(actor=request.user, user=member)
            messages.success(request, f"{name} is active again and can log in.")
        else:
            user_deactivate(actor=request.user, user=member)
            messages.success(
                request, f"{name} is deactivated: they can no longer log in nor use their tokens."
            )
    except TeamError as exc:
        messages.error(request, f"{name} not changed: {exc.message}")
    return redirect("evaluations:team")
