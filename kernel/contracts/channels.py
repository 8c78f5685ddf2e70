"""Public and private event types and WebSocket channel names (architecture seed §5 and §9)."""

from __future__ import annotations

from typing import Final

# Public payload types: broadcastable market and alpha telemetry.
AGG_UPDATE: Final = "agg_update"
ALPHA_CONVICTION: Final = "alpha_conviction"
GOV_UPDATE: Final = "gov_update"
INTEL_UPDATE: Final = "intel_update"
PUBLIC_EVENT_TYPES: Final = frozenset({AGG_UPDATE, ALPHA_CONVICTION, GOV_UPDATE, INTEL_UPDATE})

# Private payload types: never sent without an authenticated user binding.
EXEC_PLAN: Final = "exec_plan"
EXECUTION_EVENT: Final = "execution_event"
ORDER_UPDATE: Final = "order_update"
FILL_UPDATE: Final = "fill_update"
ACCOUNT_UPDATE: Final = "account_update"
RISK_UPDATE: Final = "risk_update"
PRIVATE_EVENT_TYPES: Final = frozenset(
    {EXEC_PLAN, EXECUTION_EVENT, ORDER_UPDATE, FILL_UPDATE, ACCOUNT_UPDATE, RISK_UPDATE}
)

# Internal events (ingest → feature builders → hot state); never forwarded to browsers as such.
MARKET_BOOK: Final = "market.book"
MARKET_TRADES: Final = "market.trades"
MARKET_MIDS: Final = "market.mids"
MARKET_CTX: Final = "market.ctx"
MARKET_CANDLE: Final = "market.candle"
SOURCE_STATUS: Final = "source.status"
INTERNAL_EVENT_TYPES: Final = frozenset(
    {MARKET_BOOK, MARKET_TRADES, MARKET_MIDS, MARKET_CTX, MARKET_CANDLE, SOURCE_STATUS}
)

EVENT_TYPES: Final = PUBLIC_EVENT_TYPES | PRIVATE_EVENT_TYPES | INTERNAL_EVENT_TYPES

# WebSocket channels a client subscribes to.
PUBLIC_MARKET: Final = "public.market"
PUBLIC_ALPHA: Final = "public.alpha"
PUBLIC_INTEL: Final = "public.intel"
PRIVATE_EXECUTION: Final = "private.execution"
PRIVATE_ACCOUNT: Final = "private.account"

PUBLIC_CHANNELS: Final = frozenset({PUBLIC_MARKET, PUBLIC_ALPHA, PUBLIC_INTEL})
PRIVATE_CHANNELS: Final = frozenset({PRIVATE_EXECUTION, PRIVATE_ACCOUNT})

CHANNEL_OF_EVENT: Final[dict[str, str]] = {
    AGG_UPDATE: PUBLIC_MARKET,
    ALPHA_CONVICTION: PUBLIC_ALPHA,
    GOV_UPDATE: PUBLIC_ALPHA,
    INTEL_UPDATE: PUBLIC_INTEL,
    EXECUTION_EVENT: PRIVATE_EXECUTION,
    ORDER_UPDATE: PRIVATE_EXECUTION,
    FILL_UPDATE: PRIVATE_EXECUTION,
    ACCOUNT_UPDATE: PRIVATE_ACCOUNT,
    RISK_UPDATE: PRIVATE_ACCOUNT,
    EXEC_PLAN: PRIVATE_ACCOUNT,
}

# Client → server frame types on /ws.
CLIENT_SUBSCRIBE: Final = "subscribe"
CLIENT_UNSUBSCRIBE: Final = "unsubscribe"
CLIENT_SUBSCRIBE_PRIVATE: Final = "subscribe_private"
CLIENT_UNSUBSCRIBE_PRIVATE: Final = "unsubscribe_private"
CLIENT_PING: Final = "ping"
CLIENT_FRAME_TYPES: Final = frozenset(
    {CLIENT_SUBSCRIBE, CLIENT_UNSUBSCRIBE, CLIENT_SUBSCRIBE_PRIVATE, CLIENT_UNSUBSCRIBE_PRIVATE, CLIENT_PING}
)


def channel_for_event(event_type: str) -> str:
    """The WS channel an event type is delivered on; KeyError for internal events."""
    return CHANNEL_OF_EVENT[event_type]


def is_private_event(event_type: str) -> bool:
    return event_type in PRIVATE_EVENT_TYPES
