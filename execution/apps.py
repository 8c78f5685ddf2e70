from django.apps import AppConfig


class ExecutionConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "execution"

    def ready(self) -> None:
        # Periodic jobs register at import of the tasks module (Celery beat + the one-process scheduler).
        from execution import tasks  # noqa: F401
