from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run the alpha pipeline worker (conviction every ALPHA_INTERVAL_MS, gates, autonomous execution)."

    def handle(self, *args: Any, **options: Any) -> None:
        from alpha.pipeline import AlphaWorker

        AlphaWorker().run_forever()
