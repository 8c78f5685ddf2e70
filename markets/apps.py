from django.apps import AppConfig


class MarketsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "markets"

    def ready(self) -> None:
        # Imported here, not at the top: these modules use models and settings, which exist once apps are loaded.
        from kernel import readiness, realtime
        from markets.hotstate import demand_record
        from markets.services import market_freshness_check

        readiness.register("market_freshness", market_freshness_check)
        realtime.set_demand_sink(demand_record)
