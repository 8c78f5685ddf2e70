"""`python manage.py hlsim`: run the Hyperliquid-compatible paper venue (thin wrapper over hlsim.cli)."""

from __future__ import annotations

import asyncio
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from hlsim.cli import CliError, add_arguments, config_from_options, serve


class Command(BaseCommand):
    help = "Serve the hlsim Hyperliquid simulator: POST /info, POST /exchange and WS /ws on one port."

    def add_arguments(self, parser: CommandParser) -> None:
        add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            config, chaos = config_from_options(options)
        except CliError as exc:
            raise CommandError(str(exc)) from exc
        asyncio.run(serve(config, chaos))
