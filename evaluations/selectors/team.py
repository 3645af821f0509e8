"""Reads for the Team page: the users with their roles."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser

from evaluations.roles import ROLE_NAMES


@dataclass
class TeamRow:
    user: AbstractBaseUser
    roles: list[str]  # the role groups the user is in, in ROLE_NAMES order
    is_self: bool


def team_rows(*, viewer) -> list[TeamRow]:
    """Every user, active ones first, then by username; one query for the users and their groups."""
    users = get_user_model().objects.prefetch_related("groups").order_by("-is_active", "username")
    rows = []
    for user in users:
        names = {g.name for g in user.groups.all()}
        rows.append(
            TeamRow(user=user, roles=[n for n in ROLE_NAMES if n in names], is_self=user.pk == viewer.pk)
        )
    return rows
