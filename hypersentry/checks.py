"""System checks that `check --deploy` does not do for us: wildcard hosts, WS routing without an origin check, and
periodic jobs that would not run in one of the topologies."""

from __future__ import annotations

from typing import Any

from channels.routing import ProtocolTypeRouter
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from hypersentry.celery import app as celery_app
from kernel.schedule import job_problems, periodic_jobs


@register(Tags.security, deploy=True)
def check_allowed_hosts_wildcard(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if any(h == "*" or h.startswith("*") or h == "." for h in settings.ALLOWED_HOSTS):
        return [
            Error(
                "ALLOWED_HOSTS contains a wildcard: any Host header is accepted, and origin checks that rely "
                "on hosts accept any site.",
                hint="List the public host names in ALLOWED_HOSTS.",
                id="hypersentry.E001",
            )
        ]
    return []


def websocket_origin_problems(application: Any) -> list[str]:
    """Problems with how the ASGI app guards WebSockets (pure: takes the app, returns messages)."""
    if not isinstance(application, ProtocolTypeRouter):
        return ["the ASGI application is not a ProtocolTypeRouter, so WebSocket routing cannot be checked"]
    ws_app = application.application_mapping.get("websocket")
    if ws_app is None:
        return []
    if not isinstance(ws_app, OriginValidator):
        return ["WebSocket routing is not wrapped in OriginValidator: any site can open sockets with the cookies"]
    if "*" in ws_app.allowed_origins:
        return ["OriginValidator allows the wildcard origin '*'"]
    return []


@register(Tags.security)
def check_websocket_origin_validation(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    # Imported here, not at the top: building the ASGI app runs django.setup(), which must not run while the apps
    # are still loading (this module is imported from HypersentryConfig.ready).
    from hypersentry.asgi import application

    return [
        Error(p, hint="Wrap the websocket router in OriginValidator(..., ALLOWED_ORIGINS).", id="hypersentry.E002")
        for p in websocket_origin_problems(application)
    ]


@register()
def check_periodic_jobs(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Every periodic job resolves to a registered Celery task running the job's own function, once per name."""
    return [
        Error(
            p,
            hint="Declare each job once with @kernel.schedule.periodic(name=...) on the function itself.",
            id="hypersentry.E003",
        )
        for p in job_problems(periodic_jobs(), celery_app.tasks)
    ]


@register()
def check_renamed_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """A variable set under its old name still works; say which name to use instead."""
    return [
        Warning(
            f"Environment variable {old} is an old name: it is read as {new}.",
            hint=f"Rename {old} to {new} in your environment (.env); the old name will stop working.",
            id="hypersentry.W001",
        )
        for old, new in sorted(settings.RENAMED_SETTINGS_IN_USE.items())
    ]
