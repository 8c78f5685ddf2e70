"""HyperSentry settings: one base, everything that differs between deployments comes from the environment.

With no environment at all the embedded defaults apply: SQLite, the in-memory channel layer, the venue
simulator, ENVIRONMENT=development. Every variable is documented in `.env.example`.
"""

from __future__ import annotations

import contextlib
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from kernel.env import Env

BASE_DIR = Path(__file__).resolve().parent.parent
VERSION = "0.1.0"

# Old variable names that still work (a system check, hypersentry.W001, asks to rename them): the market-data settings
# took one prefix, AGGREGATOR_ (the TRADING_ and MARKETS_ spellings were the same component under other names).
RENAMED_SETTINGS = {
    "TRADING_TOKENS_CACHE_SEC": "AGGREGATOR_TOKENS_CACHE_SEC",
    "TRADING_PREFER_AGGREGATOR_MARKET_DATA": "AGGREGATOR_PREFER_HOT_STATE",
    "TRADING_PRICES_CACHE_SEC": "AGGREGATOR_PRICES_CACHE_SEC",
    "TRADING_ORDERBOOK_CACHE_SEC": "AGGREGATOR_ORDERBOOK_CACHE_SEC",
    "TRADING_ORDERBOOK_UPSTREAM_MIN_SEC": "AGGREGATOR_ORDERBOOK_UPSTREAM_MIN_SEC",
    "TRADING_ORDERBOOK_AGG_FRESH_SEC": "AGGREGATOR_ORDERBOOK_FRESH_SEC",
    "TRADING_ORDERBOOK_AGG_BACKOFF_SEC": "AGGREGATOR_UPSTREAM_BACKOFF_SEC",
    "TRADING_CANDLES_CACHE_SEC": "AGGREGATOR_CANDLES_CACHE_SEC",
    "TRADING_WARN_THROTTLE_SEC": "AGGREGATOR_WARN_THROTTLE_SEC",
    "MARKETS_UPSTREAM_BUDGET_METADATA_PER_MIN": "AGGREGATOR_UPSTREAM_BUDGET_METADATA_PER_MIN",
    "MARKETS_UPSTREAM_BUDGET_ORDERBOOK_PER_MIN": "AGGREGATOR_UPSTREAM_BUDGET_ORDERBOOK_PER_MIN",
    "MARKETS_UPSTREAM_BUDGET_CANDLES_PER_MIN": "AGGREGATOR_UPSTREAM_BUDGET_CANDLES_PER_MIN",
    "TRADING_ACCOUNT_CACHE_SEC": "EXECUTION_ACCOUNT_CACHE_SEC",
}
env = Env(renamed=RENAMED_SETTINGS)

# --- Environment and core -------------------------------------------------------------------------------
ENVIRONMENT = env.choice("ENVIRONMENT", "development", ["development", "test", "staging", "production"])
IS_PRODUCTION = ENVIRONMENT == "production"
DEBUG = env.flag("DEBUG", ENVIRONMENT == "development")

_DEV_SECRET = "dev-insecure-hypersentry-secret-key-change-me-0123456789abcdefghij"
SECRET_KEY = env.text("SECRET_KEY", "" if ENVIRONMENT in ("production", "staging") else _DEV_SECRET)

FRONTEND_URL = env.url("FRONTEND_URL", "http://127.0.0.1:8000", schemes=("http", "https")).rstrip("/")
_frontend = urlsplit(FRONTEND_URL)
if not _frontend.hostname:
    raise ImproperlyConfigured(f"Environment variable FRONTEND_URL={FRONTEND_URL!r} is invalid: expected an origin.")
PUBLIC_ORIGIN = f"{_frontend.scheme}://{_frontend.netloc}"

_default_origins = [PUBLIC_ORIGIN]
if not IS_PRODUCTION:
    _default_origins += ["http://127.0.0.1:8000", "http://localhost:8000"]
ALLOWED_ORIGINS = list(dict.fromkeys(env.origin_list("ALLOWED_ORIGINS", _default_origins)))
CSRF_TRUSTED_ORIGINS = [o for o in ALLOWED_ORIGINS if o != "*"]

_default_hosts = sorted({urlsplit(o).hostname or "" for o in CSRF_TRUSTED_ORIGINS} - {""})
if ENVIRONMENT in ("development", "test"):
    _default_hosts += ["testserver", "localhost", "127.0.0.1"]
ALLOWED_HOSTS = list(dict.fromkeys(env.csv("ALLOWED_HOSTS", _default_hosts)))

# --- Venue ----------------------------------------------------------------------------------------------
HYPERSENTRY_VENUE = env.choice("HYPERSENTRY_VENUE", "sim", ["sim", "testnet", "mainnet"])
_VENUE_URLS = {
    "sim": "http://127.0.0.1:3001",
    "testnet": "https://api.hyperliquid-testnet.xyz",
    "mainnet": "https://api.hyperliquid.xyz",
}
HYPERSENTRY_VENUE_URL = env.url("HYPERSENTRY_VENUE_URL", _VENUE_URLS[HYPERSENTRY_VENUE], schemes=("http", "https"))
HYPERSENTRY_VENUE_URL = HYPERSENTRY_VENUE_URL.rstrip("/")
VENUE_IS_SIMULATOR = HYPERSENTRY_VENUE == "sim"
# The one-process topology starts the simulator in-process unless told it runs elsewhere.
HYPERSENTRY_EMBED_SIMULATOR = env.flag("HYPERSENTRY_EMBED_SIMULATOR", VENUE_IS_SIMULATOR)
HLSIM_SEED = env.integer("HLSIM_SEED", 7, min_value=0)
HLSIM_SPEED = env.number("HLSIM_SPEED", 1.0, min_value=0.01, max_value=1000.0)
HLSIM_PAPER_BALANCE = env.decimal("HLSIM_PAPER_BALANCE", "100000", min_value=Decimal(0))

# --- Trading gates ------------------------------------------------------------------------------------------
# Paper trading on the simulator works out of the box; a real venue needs an explicit opt-in.
ENABLE_SERVER_SIDE_TRADING = env.flag("ENABLE_SERVER_SIDE_TRADING", VENUE_IS_SIMULATOR)
REQUIRE_ADMIN_FOR_SERVER_TRADING = env.flag("REQUIRE_ADMIN_FOR_SERVER_TRADING", not VENUE_IS_SIMULATOR)
RISK_AUTO_MODE_ENABLED = env.flag("RISK_AUTO_MODE_ENABLED", False)

# --- Secrets for agent wallets ---------------------------------------------------------------------------
# Comma-separated Fernet-compatible keys (urlsafe base64 of 32 bytes); the first one encrypts.
AGENT_WALLET_ENCRYPTION_KEY = env.csv("AGENT_WALLET_ENCRYPTION_KEY", [])
ADMIN_ADDRESSES = env.csv("ADMIN_ADDRESSES", [])
SESSION_EXPIRE_HOURS = env.integer("SESSION_EXPIRE_HOURS", 168, min_value=1, max_value=24 * 365)
SIWE_CHAIN_IDS = [int(x) for x in env.csv("SIWE_CHAIN_IDS", ["1", "42161", "421614"]) if x.isdigit()]
SIWE_MAX_AGE_SEC = env.integer("SIWE_MAX_AGE_SEC", 300, min_value=10, max_value=3600)

# --- Storage --------------------------------------------------------------------------------------------
DATABASE_URL = env.url("DATABASE_URL", "", schemes=("postgres", "postgresql", "sqlite"))
REDIS_URL = env.url("REDIS_URL", "", schemes=("redis", "rediss", "unix"))
SQLITE_PATH = env.text("SQLITE_PATH", str(BASE_DIR / "var" / "db.sqlite3"))

# No persistent connections (Django's advice under ASGI): each request's sync code runs in a thread of its own, so
# per-thread connections kept open for reuse would pile up until PostgreSQL refuses new clients ("too many
# clients already" under a burst of requests). A request opens one connection and closes it when it ends; put
# pgbouncer in front for connection reuse at scale.
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = 5
else:
    Path(SQLITE_PATH).parent.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": SQLITE_PATH,
            # WAL + IMMEDIATE: the one-process topology writes from several threads.
            "OPTIONS": {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
        }
    }

# The channel layer is kernel.realtime's broadcaster under Channels' API, in both topologies: with REDIS_URL a
# group_send is one Redis PUBLISH read by one pattern subscription per web process; without it, in-memory fan-out.
CHANNEL_LAYERS = {"default": {"BACKEND": "kernel.channel_layer.RealtimeChannelLayer", "CONFIG": {"capacity": 1000}}}

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "hs",
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "hypersentry"}}

# Celery: the split topologies use Redis as broker; the one-process topology runs periodic jobs in its loop.
CELERY_BROKER_URL = env.text("CELERY_BROKER_URL", REDIS_URL or "memory://")
CELERY_RESULT_BACKEND = env.text("CELERY_RESULT_BACKEND", "")
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_TIME_LIMIT = 120
CELERY_TASK_SOFT_TIME_LIMIT = 100
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = "UTC"

# --- Market data tuning (deployment guide §6) -------------------------------------------------------------
AGGREGATOR_TOKENS_CACHE_SEC = env.number("AGGREGATOR_TOKENS_CACHE_SEC", 20.0, min_value=0)
AGGREGATOR_PREFER_HOT_STATE = env.flag("AGGREGATOR_PREFER_HOT_STATE", True)
AGGREGATOR_PRICES_CACHE_SEC = env.number("AGGREGATOR_PRICES_CACHE_SEC", 2.0, min_value=0)
AGGREGATOR_ORDERBOOK_CACHE_SEC = env.number("AGGREGATOR_ORDERBOOK_CACHE_SEC", 2.0, min_value=0)
AGGREGATOR_ORDERBOOK_UPSTREAM_MIN_SEC = env.number("AGGREGATOR_ORDERBOOK_UPSTREAM_MIN_SEC", 5.0, min_value=0)
AGGREGATOR_ORDERBOOK_FRESH_SEC = env.number("AGGREGATOR_ORDERBOOK_FRESH_SEC", 3.0, min_value=0)
AGGREGATOR_UPSTREAM_BACKOFF_SEC = env.number("AGGREGATOR_UPSTREAM_BACKOFF_SEC", 45.0, min_value=0)
EXECUTION_ACCOUNT_CACHE_SEC = env.number("EXECUTION_ACCOUNT_CACHE_SEC", 5.0, min_value=0)
AGGREGATOR_CANDLES_CACHE_SEC = env.number("AGGREGATOR_CANDLES_CACHE_SEC", 2.5, min_value=0)
AGGREGATOR_WARN_THROTTLE_SEC = env.number("AGGREGATOR_WARN_THROTTLE_SEC", 30.0, min_value=0)

AGGREGATOR_MAX_SUBSCRIPTIONS = env.integer("AGGREGATOR_MAX_SUBSCRIPTIONS", 80, min_value=1, max_value=1000)
AGGREGATOR_AUTO_SUBSCRIBE_TOP_N = env.integer("AGGREGATOR_AUTO_SUBSCRIBE_TOP_N", 15, min_value=0, max_value=1000)
AGGREGATOR_SUBSCRIBE_BATCH_SIZE = env.integer("AGGREGATOR_SUBSCRIBE_BATCH_SIZE", 3, min_value=1, max_value=1000)
AGGREGATOR_SUBSCRIBE_BATCH_PAUSE_SEC = env.number("AGGREGATOR_SUBSCRIBE_BATCH_PAUSE_SEC", 0.10, min_value=0)
AGGREGATOR_OI_HL_WEIGHT = env.number("AGGREGATOR_OI_HL_WEIGHT", 0.65, min_value=0, max_value=1)
AGGREGATOR_OI_BINANCE_WEIGHT = env.number("AGGREGATOR_OI_BINANCE_WEIGHT", 0.35, min_value=0, max_value=1)
AGGREGATOR_CVD_BINANCE_WEIGHT = env.number("AGGREGATOR_CVD_BINANCE_WEIGHT", 0.70, min_value=0, max_value=1)
AGGREGATOR_CVD_COINBASE_WEIGHT = env.number("AGGREGATOR_CVD_COINBASE_WEIGHT", 0.30, min_value=0, max_value=1)
AGGREGATOR_PUBLISH_INTERVAL_MS = env.integer("AGGREGATOR_PUBLISH_INTERVAL_MS", 200, min_value=10, max_value=250)
AGGREGATOR_STALL_SEC = env.number("AGGREGATOR_STALL_SEC", 10.0, min_value=1)
AGGREGATOR_PRICE_JUMP_SIGMA = env.number("AGGREGATOR_PRICE_JUMP_SIGMA", 8.0, min_value=1)

# --- WebSocket gateway ------------------------------------------------------------------------------------
WS_MAX_SUBSCRIPTIONS = env.integer("WS_MAX_SUBSCRIPTIONS", 50, min_value=1, max_value=1000)
WS_MAX_MESSAGES_PER_SEC = env.integer("WS_MAX_MESSAGES_PER_SEC", 20, min_value=1, max_value=10000)
WS_SEND_BUFFER = env.integer("WS_SEND_BUFFER", 64, min_value=4, max_value=100000)
# A client whose socket accepts no frame for this long is closed with 4010 (slow); conflated data is skipped
# for a lagging client before that.
WS_SLOW_CLIENT_TIMEOUT_SEC = env.number("WS_SLOW_CLIENT_TIMEOUT_SEC", 10.0, min_value=0.1, max_value=600)
# Authenticated sockets re-check their session (exists, not expired, user active) at this interval.
WS_SESSION_RECHECK_SEC = env.number("WS_SESSION_RECHECK_SEC", 30.0, min_value=0.1, max_value=60)
# Private events kept per user for a REST resync after a gap.
WS_PRIVATE_REPLAY = env.integer("WS_PRIVATE_REPLAY", 500, min_value=10, max_value=100000)
WS_MAX_FRAME_BYTES = env.integer("WS_MAX_FRAME_BYTES", 4096, min_value=256, max_value=1048576)
# Connection caps checked before a socket is accepted (refused with HTTP 403 at the handshake).
WS_MAX_CONNECTIONS_PER_IP = env.integer("WS_MAX_CONNECTIONS_PER_IP", 50, min_value=1, max_value=100000)
WS_MAX_CONNECTIONS = env.integer("WS_MAX_CONNECTIONS", 5000, min_value=1, max_value=1000000)

# --- Logging -----------------------------------------------------------------------------------------------
LOG_LEVEL = env.choice("LOG_LEVEL", "info", ["debug", "info", "warning", "error"]).upper()
LOG_FORMAT = env.choice("LOG_FORMAT", "json" if IS_PRODUCTION else "text", ["json", "text"])
# Repeated warnings of one cause (bad Host, malformed bodies, refused sockets) are logged at most once per this.
LOG_THROTTLE_SEC = env.number("LOG_THROTTLE_SEC", 10.0, min_value=0, max_value=3600)
# /metrics: staff sessions, or `Authorization: Bearer <METRICS_BEARER_TOKEN>` (Prometheus `authorization`).
METRICS_BEARER_TOKEN = env.text("METRICS_BEARER_TOKEN", "")

# --- Production guard rails --------------------------------------------------------------------------------
SECURE_SSL_REDIRECT = env.flag("SECURE_SSL_REDIRECT", IS_PRODUCTION)
_behind_proxy = env.flag("BEHIND_TLS_PROXY", IS_PRODUCTION)
if _behind_proxy:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")


def _production_problems() -> list[str]:
    problems = []
    if DEBUG:
        problems.append("DEBUG is on (set DEBUG=false)")
    if len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5 or SECRET_KEY == _DEV_SECRET:
        problems.append("SECRET_KEY is missing or weak (at least 50 random characters)")
    if "*" in ALLOWED_HOSTS or any(h.startswith("*") or h == "." for h in ALLOWED_HOSTS):
        problems.append("ALLOWED_HOSTS contains a wildcard")
    if "*" in ALLOWED_ORIGINS:
        problems.append("ALLOWED_ORIGINS contains a wildcard")
    if any(urlsplit(o).scheme != "https" for o in ALLOWED_ORIGINS):
        problems.append("ALLOWED_ORIGINS must be https:// origins")
    if not AGENT_WALLET_ENCRYPTION_KEY:
        problems.append("AGENT_WALLET_ENCRYPTION_KEY is not set")
    return problems


if IS_PRODUCTION:
    _problems = _production_problems()
    if _problems:
        raise ImproperlyConfigured("Refusing to start with ENVIRONMENT=production: " + "; ".join(_problems) + ".")


def _real_venue_problems() -> list[str]:
    """A real venue moves real money: the development defaults (DEBUG, the public dev SECRET_KEY, no key for
    agent wallets) are refused whatever ENVIRONMENT says."""
    problems = []
    if DEBUG:
        problems.append("DEBUG is on (set DEBUG=false)")
    if SECRET_KEY == _DEV_SECRET or len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5:
        problems.append("SECRET_KEY is the development default, missing or weak (set at least 50 random characters)")
    if not AGENT_WALLET_ENCRYPTION_KEY:
        problems.append("AGENT_WALLET_ENCRYPTION_KEY is not set (agent keys would be sealed with nothing secret)")
    return problems


if not VENUE_IS_SIMULATOR:
    _venue_problems = _real_venue_problems()
    if _venue_problems:
        raise ImproperlyConfigured(
            f"Refusing to start with HYPERSENTRY_VENUE={HYPERSENTRY_VENUE}: " + "; ".join(_venue_problems) + "."
        )

if IS_PRODUCTION or PUBLIC_ORIGIN.startswith("https://"):
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.integer("SECURE_HSTS_SECONDS", 31536000, min_value=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# --- accounts ---------------------------------------------------------------------------------------------
# SIWE domain and URI are pinned to the public origin, never taken from the Host header.
SIWE_DOMAIN = _frontend.netloc
SIWE_URI = PUBLIC_ORIGIN
SIWE_SCHEME = _frontend.scheme
SIWE_CLOCK_SKEW_SEC = env.integer("SIWE_CLOCK_SKEW_SEC", 30, min_value=0, max_value=300)
# Sessions are re-keyed every SESSION_ROTATE_SEC of activity (and at login).
SESSION_ROTATE_SEC = env.integer("SESSION_ROTATE_SEC", 3600, min_value=60, max_value=7 * 24 * 3600)
AUTH_RATE_LIMIT_PER_IP = env.integer("AUTH_RATE_LIMIT_PER_IP", 60, min_value=1, max_value=100000)
AUTH_RATE_LIMIT_PER_ADDRESS = env.integer("AUTH_RATE_LIMIT_PER_ADDRESS", 20, min_value=1, max_value=100000)
AUTH_RATE_LIMIT_WINDOW_SEC = env.integer("AUTH_RATE_LIMIT_WINDOW_SEC", 60, min_value=1, max_value=3600)
AGENT_VALIDITY_DAYS = env.integer("AGENT_VALIDITY_DAYS", 30, min_value=1, max_value=180)
AGENT_EXPIRY_WARN_DAYS = env.integer("AGENT_EXPIRY_WARN_DAYS", 7, min_value=0, max_value=180)
AGENT_VENUE_TIMEOUT_SEC = env.number("AGENT_VENUE_TIMEOUT_SEC", 10.0, min_value=0.5, max_value=120.0)
CSRF_FAILURE_VIEW = "accounts.views.csrf_failure"
LOGIN_URL = "/auth/signin"

# --- markets (ingest pipeline) --------------------------------------------------------------------------------
# Venue REST budgets per endpoint class (requests per minute, shared by all processes through the cache).
AGGREGATOR_UPSTREAM_BUDGET_METADATA_PER_MIN = env.integer(
    "AGGREGATOR_UPSTREAM_BUDGET_METADATA_PER_MIN", 30, min_value=1, max_value=10000
)
AGGREGATOR_UPSTREAM_BUDGET_ORDERBOOK_PER_MIN = env.integer(
    "AGGREGATOR_UPSTREAM_BUDGET_ORDERBOOK_PER_MIN", 120, min_value=1, max_value=10000
)
AGGREGATOR_UPSTREAM_BUDGET_CANDLES_PER_MIN = env.integer(
    "AGGREGATOR_UPSTREAM_BUDGET_CANDLES_PER_MIN", 60, min_value=1, max_value=10000
)
# Keep-alive ping period on the venue socket (the venue closes a connection idle for 60 s).
AGGREGATOR_PING_SEC = env.number("AGGREGATOR_PING_SEC", 20.0, min_value=1, max_value=55)
AGGREGATOR_RECONNECT_MAX_SEC = env.number("AGGREGATOR_RECONNECT_MAX_SEC", 30.0, min_value=0.5, max_value=600)
AGGREGATOR_BOOK_DEPTH_BPS = env.number("AGGREGATOR_BOOK_DEPTH_BPS", 10.0, min_value=0.1, max_value=10000)
# Ingest runs in the one-process topology unless disabled (e.g. the gateway of a split topology).
AGGREGATOR_EMBEDDED = env.flag("AGGREGATOR_EMBEDDED", True)

# --- venue client (every /info and /exchange call of every process) ---------------------------------------------
# The venue allows 1200 REST weight per minute per IP, shared by everything this deployment does. We budget this
# much of it (10 s windows in the shared cache: Redis in split topologies), with a share per priority so reads and
# background work can never starve orders; cancels are counted but never refused.
VENUE_WEIGHT_PER_MIN = env.integer("VENUE_WEIGHT_PER_MIN", 1000, min_value=60, max_value=1200)
# Account reads (positions, account, open orders, order status) one user may cause per minute.
VENUE_USER_WEIGHT_PER_MIN = env.integer("VENUE_USER_WEIGHT_PER_MIN", 120, min_value=4, max_value=1200)
# After a venue 429 nothing but cancels is sent for 0.5 s, doubling per further 429 up to this.
VENUE_BACKOFF_MAX_SEC = env.number("VENUE_BACKOFF_MAX_SEC", 2.0, min_value=0.5, max_value=60.0)

# --- execution ---------------------------------------------------------------------------------------------
# Hard timeout on one venue call made by the relay (a timeout after sending leaves the order `unknown`).
EXECUTION_VENUE_TIMEOUT_SEC = env.number("EXECUTION_VENUE_TIMEOUT_SEC", 10.0, min_value=0.2, max_value=120.0)
# Idempotency keys are kept at least this long (purged hourly after that).
EXECUTION_IDEMPOTENCY_TTL_HOURS = env.integer("EXECUTION_IDEMPOTENCY_TTL_HOURS", 48, min_value=24, max_value=24 * 90)
# Cancels retry on 429 / 5xx with back-off until this deadline (cancels are safe to repeat; creations are not).
EXECUTION_CANCEL_RETRY_SEC = env.number("EXECUTION_CANCEL_RETRY_SEC", 15.0, min_value=0.0, max_value=300.0)
EXECUTION_RECONCILE_SEC = env.number("EXECUTION_RECONCILE_SEC", 15.0, min_value=1.0, max_value=3600.0)
# A user the venue's user feed streams (orders, fills and events pushed as they happen, open orders re-read on every
# (re)connect) is compared in full by REST only this often; users without a live feed every EXECUTION_RECONCILE_SEC.
EXECUTION_RECONCILE_STREAMED_SEC = env.number(
    "EXECUTION_RECONCILE_STREAMED_SEC", 300.0, min_value=5.0, max_value=86400.0
)
EXECUTION_META_CACHE_SEC = env.number("EXECUTION_META_CACHE_SEC", 300.0, min_value=5.0, max_value=86400.0)
# /info weight per minute that reconciliation and user polling may use (the venue allows 1200 per IP).
EXECUTION_RECONCILE_WEIGHT_PER_MIN = env.integer(
    "EXECUTION_RECONCILE_WEIGHT_PER_MIN", 400, min_value=45, max_value=1200
)
# Circuit breakers (bot guide): error rate over a window, venue 429s in a window, very stale data.
BREAKER_ERROR_RATE = env.number("BREAKER_ERROR_RATE", 0.20, min_value=0.01, max_value=1.0)
BREAKER_ERROR_WINDOW_SEC = env.integer("BREAKER_ERROR_WINDOW_SEC", 300, min_value=10, max_value=86400)
BREAKER_ERROR_MIN_SAMPLES = env.integer("BREAKER_ERROR_MIN_SAMPLES", 10, min_value=1, max_value=100000)
BREAKER_RATE_LIMIT_COUNT = env.integer("BREAKER_RATE_LIMIT_COUNT", 3, min_value=1, max_value=100000)
BREAKER_STALE_DATA_SEC = env.number("BREAKER_STALE_DATA_SEC", 30.0, min_value=1.0, max_value=3600.0)
# Cooldowns: a tripped breaker half-opens on its own after this (orders pass again; the next outcome closes it or
# trips it again). daily_loss half-opens at the next 00:00 UTC. An admin can reset any breaker earlier, with a reason.
BREAKER_ERROR_COOLDOWN_SEC = env.number("BREAKER_ERROR_COOLDOWN_SEC", 60.0, min_value=1.0, max_value=86400.0)
BREAKER_RATE_BUDGET_COOLDOWN_SEC = env.number("BREAKER_RATE_BUDGET_COOLDOWN_SEC", 3.0, min_value=0.5, max_value=3600.0)
BREAKER_STALE_DATA_COOLDOWN_SEC = env.number("BREAKER_STALE_DATA_COOLDOWN_SEC", 10.0, min_value=1.0, max_value=3600.0)
BREAKER_LOSS_COOLDOWN_SEC = env.number("BREAKER_LOSS_COOLDOWN_SEC", 3600.0, min_value=1.0, max_value=7 * 86400.0)
BREAKER_DRAWDOWN_COOLDOWN_SEC = env.number(
    "BREAKER_DRAWDOWN_COOLDOWN_SEC", 86400.0, min_value=1.0, max_value=30 * 86400.0
)
# Venue dead-man switch while the kill switch is engaged: scheduleCancel re-armed this far ahead.
KILLSWITCH_DEADMAN_SEC = env.integer("KILLSWITCH_DEADMAN_SEC", 60, min_value=5, max_value=3600)
# User-feed worker: venue WS user subscriptions for at most this many users per IP (venue cap 10).
USERFEED_MAX_STREAMED_USERS = env.integer("USERFEED_MAX_STREAMED_USERS", 10, min_value=0, max_value=10)
USERFEED_POLL_SEC = env.number("USERFEED_POLL_SEC", 30.0, min_value=1.0, max_value=3600.0)
EXECUTION_EMBEDDED = env.flag("EXECUTION_EMBEDDED", True)
# Per-user limits on new trading requests (replays of a stored Idempotency-Key answer are not counted).
EXECUTION_ORDERS_PER_MIN = env.integer("EXECUTION_ORDERS_PER_MIN", 60, min_value=1, max_value=100000)
EXECUTION_CANCELS_PER_MIN = env.integer("EXECUTION_CANCELS_PER_MIN", 300, min_value=1, max_value=100000)
# A trading request still `in flight` this long whose process is gone (no heartbeat) is finalised by the
# reconciler from the venue's answer by cloid (twice this long when its process still runs).
EXECUTION_INFLIGHT_STALE_SEC = env.number("EXECUTION_INFLIGHT_STALE_SEC", 30.0, min_value=5.0, max_value=3600.0)
# After a relay timeout the order is asked at the venue by cloid this many seconds later (then 2x, 4x).
EXECUTION_UNKNOWN_RESOLVE_DELAY_SEC = env.number(
    "EXECUTION_UNKNOWN_RESOLVE_DELAY_SEC", 3.0, min_value=0.5, max_value=300.0
)
# Private stream events (order/fill/account/risk updates) are kept this long for the REST resync, then purged.
EXECUTION_PRIVATE_EVENTS_KEEP_HOURS = env.number(
    "EXECUTION_PRIVATE_EVENTS_KEEP_HOURS", 48.0, min_value=1.0, max_value=24 * 90.0
)
# Per-user limit on reads of each of GET /trading/positions, /account, /orders, /fills; answered 429 beyond it.
EXECUTION_READS_PER_MIN = env.integer("EXECUTION_READS_PER_MIN", 120, min_value=1, max_value=100000)

# --- alpha -------------------------------------------------------------------------------------------------
# Gate thresholds and engine parameters live in the database (admin: Alpha settings); these size the worker.
ALPHA_EMBEDDED = env.flag("ALPHA_EMBEDDED", True)
ALPHA_INTERVAL_MS = env.integer("ALPHA_INTERVAL_MS", 200, min_value=50, max_value=10_000)
ALPHA_MAX_SYMBOLS = env.integer("ALPHA_MAX_SYMBOLS", 100, min_value=1, max_value=1000)
ALPHA_MAX_PRIVATE_USERS = env.integer("ALPHA_MAX_PRIVATE_USERS", 200, min_value=0, max_value=10_000)
ALPHA_EQUITY_REFRESH_SEC = env.number("ALPHA_EQUITY_REFRESH_SEC", 5.0, min_value=1.0, max_value=600.0)

# --- Django ------------------------------------------------------------------------------------------------
INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "drf_spectacular",
    "hypersentry",
    "accounts",
    "markets",
    "alpha",
    "execution",
]

MIDDLEWARE = [
    "kernel.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "kernel.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.SessionTrackingMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "kernel.middleware.DependencyFailureMiddleware",
]

ROOT_URLCONF = "hypersentry.urls"
ASGI_APPLICATION = "hypersentry.asgi.application"
AUTH_USER_MODEL = "accounts.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "hypersentry.context.site",
            ]
        },
    }
]

SESSION_ENGINE = "django.contrib.sessions.backends.db"
SESSION_COOKIE_AGE = SESSION_EXPIRE_HOURS * 3600
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
# WhiteNoise warns on every start when the collect target is missing; read-only images just skip this.
with contextlib.suppress(OSError):
    STATIC_ROOT.mkdir(exist_ok=True)
# WhiteNoise serves /static/ in every topology; with finders no collectstatic is needed for `make run`
# (the Docker image still collects, and WhiteNoise then serves STATIC_ROOT with far-future caching off).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["kernel.parsers.OrjsonParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "kernel.errors.drf_exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {"TITLE": "HyperSentry API", "VERSION": VERSION, "SERVE_INCLUDE_SCHEMA": False}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "kernel.logging.RequestIdFilter"},
        # On the emitting loggers below (logger filters do not apply to child loggers, hence the explicit list).
        # Off under ENVIRONMENT=test: tests assert on single log lines; tests of the throttle switch it on.
        "throttle": {
            "()": "kernel.logging.ThrottleFilter",
            "interval_sec": 0.0 if ENVIRONMENT == "test" else LOG_THROTTLE_SEC,
        },
        "client_errors": {"()": "kernel.logging.ClientErrorFilter"},
    },
    "formatters": {
        "json": {"()": "kernel.logging.JsonFormatter"},
        "text": {"()": "kernel.logging.TextFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Replace Django's default console handler for "django" so lines are not printed twice.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.server": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
        "uvicorn.access": {"level": "WARNING"},
        "websockets": {"level": "WARNING"},
        "asyncio": {"level": "WARNING"},
        # Client-caused noise: 4xx as one WARNING line without traceback, one line per cause per LOG_THROTTLE_SEC.
        "django.request": {"filters": ["throttle", "client_errors"]},
        **{
            f"django.security.{name}": {"filters": ["throttle", "client_errors"]}
            for name in (
                "csrf",
                "DisallowedHost",
                "DisallowedRedirect",
                "DisallowedModelAdminLookup",
                "DisallowedModelAdminToField",
                "InvalidSessionKey",
                "RequestDataTooBig",
                "SuspiciousFileOperation",
                "SuspiciousMultipartForm",
                "SuspiciousOperation",
                "SuspiciousSession",
                "TooManyFieldsSent",
                "TooManyFilesSent",
            )
        },
        "hypersentry.asgi": {"filters": ["throttle"]},  # refused WebSocket handshakes
        "uvicorn.error": {"filters": ["throttle"]},  # per-connection lines ("WebSocket /ws 403", "connection open")
    },
}

# Old names found in the environment (old → current), for the hypersentry.W001 check. Keep this last.
RENAMED_SETTINGS_IN_USE = dict(env.deprecated)
