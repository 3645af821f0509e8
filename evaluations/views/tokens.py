"""API tokens page: a user's own tokens (prefix, created, last used), create one (shown once), revoke."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from evaluations.forms import ApiTokenForm
from evaluations.models import ApiToken
from evaluations.services.tokens import TokenError, api_token_create, api_token_revoke


@never_cache
@login_required
def token_list(request: HttpRequest) -> HttpResponse:
    form = ApiTokenForm(request.POST or None)
    created = None
    if request.method == "POST" and form.is_valid():
        days = form.cleaned_data["expires_in_days"]
        try:
            row, token = api_token_create(
                user=request.user,
                name=form.cleaned_data["name"],
                expires_at=timezone.now() + timedelta(days=days) if days else None,
            )
        except TokenError as exc:
            form.add_error(None, str(exc))
        else:
            # Rendered (not redirected): the token must not pass through the session or a message.
            created = {"row": row, "token": token}
            form = ApiTokenForm()
    tokens = ApiToken.objects.filter(user=request.user).order_by("-created_at", "-id")
    return render(
        request,
        "evaluations/tokens.html",
        {"tokens": tokens, "form": form, "created": created, "now": timezone.now()},
        status=400 if request.method == "POST" and created is None else 200,
    )


@login_required
@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    api_token_revoke(token=token, user=request.user)
    messages.success(request, f"Token {token.name} ({token.prefix}…) revoked: requests with it get a 401.")
    return redirect("evaluations:token-list")
