"""Roles in templates: `{% load access %}` then `{{ user|role_names|join:", " }}`."""

from __future__ import annotations

from django import template

from evaluations.roles import user_roles

register = template.Library()


@register.filter
def role_names(user) -> list[str]:
    """The role names `user` holds ("admin" for a superuser), in the roles table's order."""
    return user_roles(user)
