"""Who may call an API: one check for every app's views (a signed-in session, else our 401)."""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request

from kernel.errors import NotAuthenticated


def signed_in_user(request: Request) -> Any:
    """The request's signed-in user, or 401 `authentication_required` (for views whose other methods are public)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        raise NotAuthenticated("sign in first")
    return user
