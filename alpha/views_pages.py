"""The /alpha page: first paint from the stored readings, then live over /ws (public.alpha + private stream)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from alpha import selectors
from kernel import clock


def alpha_page_context(*, user_id: int | None) -> dict[str, Any]:
    row = selectors.alpha_settings_get()
    index = selectors.conviction_index_get()
    now = clock.now_ms()
    btc = "BTC"
    symbols = sorted(index, key=lambda s: (s != btc, s != "ETH", s))[: max(1, settings.WS_MAX_SUBSCRIPTIONS - 1)]
    rows = [
        {"symbol": s, **index[s], "stale": now - int(index[s].get("ts") or 0) > row.stale_after_ms} for s in symbols
    ]
    config = {
        "ws_path": "/ws",
        "symbols": symbols,
        "signed_in": user_id is not None,
        "reference_equity_usd": str(row.reference_equity_usd),
        "thresholds": {
            "min_score_long": row.min_score_long,
            "max_score_short": row.max_score_short,
            "min_streak": row.min_streak,
            "cooldown_sec": row.cooldown_sec,
            "max_concurrent": row.max_concurrent,
            "min_size_usd": str(row.min_size_usd),
            "venue_min_notional_usd": str(row.venue_min_notional_usd),
        },
        "smoothing": {"alpha": 0.08, "deadband_pct": 3.0, "bias_stability": 5, "force_refresh_ms": 10_000},
    }
    return {"rows": rows, "page_config": config, "thresholds": config["thresholds"]}


@require_safe
def alpha_page(request: HttpRequest) -> HttpResponse:
    user = getattr(request, "user", None)
    user_id = user.pk if user is not None and user.is_authenticated else None
    return render(request, "alpha/alpha.html", alpha_page_context(user_id=user_id))
