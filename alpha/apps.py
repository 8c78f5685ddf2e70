from django.apps import AppConfig


class AlphaAppConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "alpha"
