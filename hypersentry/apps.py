from django.apps import AppConfig


class HypersentryConfig(AppConfig):
    name = "hypersentry"
    verbose_name = "HyperSentry"

    def ready(self) -> None:
        from hypersentry import checks  # noqa: F401  (registers the system checks)
