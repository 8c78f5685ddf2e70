from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest


def site(request: HttpRequest) -> dict[str, Any]:
    """Template context shared by every page: venue badge, version."""
    return {
        "HS_VERSION": settings.VERSION,
        "HS_VENUE": settings.HYPERSENTRY_VENUE,
        "HS_VENUE_IS_SIM": settings.VENUE_IS_SIMULATOR,
        "HS_ENVIRONMENT": settings.ENVIRONMENT,
    }
