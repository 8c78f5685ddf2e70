"""`manage.py run_userfeed`: the venue user-feed worker (orderUpdates / userFills / userEvents) on its own."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from execution.userfeed import UserFeedWorker


class Command(BaseCommand):
    help = "Stream venue user feeds for the most recently active users (≤10 per IP) and poll the others."

    def handle(self, *args: Any, **opts: Any) -> None:

        UserFeedWorker().run_forever()
