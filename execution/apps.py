from django.apps import AppConfig


class ExecutionConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "execution"

    def ready(self) -> None:
        # Imported here, not at the top: these modules use models, which exist once apps are loaded. Periodic jobs
        # register at import of the tasks module (Celery beat + the one-process scheduler).
        from execution import tasks  # noqa: F401
        from execution.services.protection import protection_follow_on_sync
        from execution.signals import positions_synced

        positions_synced.connect(protection_follow_on_sync, dispatch_uid="execution.protection_follow")
