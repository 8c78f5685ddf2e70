"""Fuzz every HTTP route in-process: ≥ 5,000 hostile requests, no 5xx, JSON errors, a sound audit chain after.

Routes come from the OpenAPI schema served at /api/schema (drf-spectacular), plus the plain Django routes it does
not list (auth, health, metrics, pages). Hypothesis draws each request from the route's schema: mostly valid
values (so validation passes and the order endpoints reach the relay and the venue simulator), the rest hostile —
wrong types, huge/negative/zero/NaN/Infinity numbers, long and odd unicode strings, NUL bytes, deep nesting,
missing and extra fields, malformed JSON and UTF-8, wrong content types, bad and reused Idempotency-Keys, near-valid
signed sign-in messages. Each request goes out as an anonymous client, a signed-in trader with an approved agent,
or an admin (also with an agent).

Hypothesis is only the generator: each example sends one request through Django's test client and records what
came back. Nothing raises inside the generation loop, so every failing case is collected and reported at the end,
not just the first, and no time goes to shrinking. Seeds are fixed per (route, round), so the draws repeat.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import random
import threading
import time
import traceback
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import quote, unquote, urlencode

import pytest
from asgiref.sync import iscoroutinefunction
from django.core.management import call_command
from django.http import HttpResponse, JsonResponse
from django.test import AsyncClient
from django.urls import Resolver404, resolve
from eth_account import Account
from eth_account.messages import encode_defunct
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from accounts import services as account_services
from accounts.models import User
from alpha import services as alpha_services
from execution.audit import audit_verify
from execution.models import BreakerKind, IdempotencyRecord, Order, OrderState
from hlsim.server import SimulatorThread
from kernel.contracts.envelope import make_envelope
from kernel.venue import meta
from kernel.venue.rounding import round_price, round_size
from tests.factories import approve_agent, make_trader
from tests.plugins.venue import venue_simulator

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.timeout(300)]

SYMBOLS = ("BTC", "ETH", "SOL")
MIN_REQUESTS = 5_000
# Every route runs in ROUNDS rounds, so state one route leaves (kill switch, breakers, revoked agents, positions)
# meets every other route.
ROUNDS = 3
# Requests per route over all rounds. Order entry and the other money-path writes get more.
DEFAULT_BUDGET = 90
EXTRA_BUDGET = 60
BUDGETS = {
    ("POST", "/trading/order"): 360,
    ("POST", "/trading/preview"): 180,
    ("POST", "/trading/cancel"): 180,
    ("POST", "/trading/modify"): 180,
    ("POST", "/trading/positions/close"): 150,
    ("POST", "/trading/protection"): 150,
    ("POST", "/alpha/autonomous/trigger"): 120,
    ("POST", "/auth/verify"): 120,
}
# The money path in the order that lets each step find what the previous one left (resting orders to modify and
# cancel, positions to protect and close); the controls last, since the kill switch cancels every open order.
FIRST_IN_ROUND = (
    ("POST", "/trading/order"),
    ("POST", "/trading/preview"),
    ("POST", "/trading/modify"),
    ("POST", "/trading/protection"),
    ("POST", "/trading/cancel"),
    ("POST", "/trading/positions/close"),
)
LAST_IN_ROUND = {("POST", "/trading/breakers/reset"), ("POST", "/trading/killswitch")}


def round_order(op: Operation) -> tuple[int, int]:
    first = FIRST_IN_ROUND.index(op.key) if op.key in FIRST_IN_ROUND else len(FIRST_IN_ROUND)
    return (op.key in LAST_IN_ROUND) * 2 + op.disruptive, first


# The schema names no query parameters for these views; they read them all the same.
UNDOCUMENTED_QUERY = {
    ("GET", "/trading/orders"): [{"name": "open", "schema": {"enum": ["1", "true", "0", "false"]}}],
    ("GET", "/trading/stream/resync"): [{"name": "since", "schema": {"type": "integer", "minimum": 0}}],
}


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # template, `{name}` for path parameters
    params: tuple[dict[str, Any], ...] = ()
    body: dict[str, Any] | None = None  # resolved JSON schema of an application/json body
    json_api: bool = True  # errors must be {"type":"error","code","message"}
    disruptive: bool = False  # ends sessions or agents: signed-in requests come from throwaway sessions and users
    in_schema: bool = True

    @property
    def key(self) -> tuple[str, str]:
        return (self.method, self.path)


def _query(*specs: tuple[str, dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    return tuple({"name": name, "in": "query", "schema": schema} for name, schema in specs)


def _obj(*names: str) -> dict[str, Any]:
    return {"type": "object", "properties": {n: {"type": "string", "maxLength": 200} for n in names}, "required": names}


_PATH = ({"name": "symbol", "in": "path"},)
NONCE = Operation(
    "GET",
    "/auth/nonce",
    _query(
        ("address", {"type": "string", "pattern": "^0x[0-9a-fA-F]{40}$"}),
        ("chain_id", {"enum": [1, 42161, 421614]}),
        ("wallet", {"enum": ["demo", "metamask"]}),
    ),
    in_schema=False,
)
# Plain Django views (JSON and pages) that /api/schema does not describe.
EXTRA_OPERATIONS = (
    Operation("GET", "/healthz", in_schema=False),
    Operation("HEAD", "/healthz", in_schema=False),
    Operation("GET", "/readyz", in_schema=False),
    Operation("GET", "/metrics", in_schema=False),
    # The schema view answers in the negotiated schema format (YAML unless ?format=json), its errors too.
    Operation("GET", "/api/schema", _query(("format", {"enum": ["json", "yaml"]})), json_api=False, in_schema=False),
    NONCE,
    Operation("POST", "/auth/verify", body=_obj("message", "signature"), in_schema=False),
    Operation("GET", "/auth/session", in_schema=False),
    Operation("GET", "/auth/sessions", _query(("all", {"enum": ["1", "0"]})), in_schema=False),
    Operation("POST", "/auth/logout", disruptive=True, in_schema=False),
    Operation(
        "POST",
        "/auth/sessions/{public_id}/revoke",
        ({"name": "public_id", "in": "path"},),
        disruptive=True,
        in_schema=False,
    ),
    Operation("POST", "/auth/agent/prepare", disruptive=True, in_schema=False),
    Operation("POST", "/auth/agent/approve", body=_obj("signature"), disruptive=True, in_schema=False),
    Operation("POST", "/auth/agent/revoke", disruptive=True, in_schema=False),
    Operation("GET", "/auth/signin", _query(("next", {"type": "string"})), json_api=False, in_schema=False),
    Operation("GET", "/system", json_api=False, in_schema=False),
    Operation("GET", "/", json_api=False, in_schema=False),
    Operation("GET", "/alpha", json_api=False, in_schema=False),
    Operation("GET", "/terminal/{symbol}", _PATH, json_api=False, in_schema=False),
    Operation("GET", "/admin/", json_api=False, in_schema=False),
)


# --- the schema ---------------------------------------------------------------------------------------------------
def _resolve(node: Any, components: dict[str, Any]) -> Any:
    """Inline every `$ref` and collapse drf-spectacular's single-element `allOf` wrappers."""
    if isinstance(node, list):
        return [_resolve(n, components) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return _resolve(components[node["$ref"].rsplit("/", 1)[1]], components)
    out = {k: _resolve(v, components) for k, v in node.items()}
    if isinstance(out.get("allOf"), list) and len(out["allOf"]) == 1:
        return {**out.pop("allOf")[0], **out}
    return out


def schema_operations(schema: dict[str, Any]) -> list[Operation]:
    components = schema.get("components", {}).get("schemas", {})
    ops = []
    for path, item in schema["paths"].items():
        for method, spec in item.items():
            params = tuple(_resolve(p, components) for p in spec.get("parameters", []))
            params += tuple(UNDOCUMENTED_QUERY.get((method.upper(), path), []))
            content = (spec.get("requestBody") or {}).get("content", {})
            body = (
                _resolve(content["application/json"]["schema"], components) if "application/json" in content else None
            )
            ops.append(Operation(method.upper(), path, params, body))
    return ops


# --- drawing ------------------------------------------------------------------------------------------------------
HOSTILE_TEXT = (
    "", " ", "null", "true", "NaN", "-NaN", "sNaN", "Infinity", "-Infinity", "inf", "1e999999", "-1e999999",
    "1E+308", "0", "-0", "0.0", "-1", "0E-30", "1e-30", "0x10", "1_000", "١٢٣", "Ⅻ", "１２３",
    "99999999999999999999999999999999999999", "-99999999999999999999.9999999999", "1.00000000001",
    "\x00", "BTC\x00", "%00", "\t\n\r", "../../etc/passwd", "'; DROP TABLE x;--", "<script>alert(1)</script>",
    "🚀", "\u202e", "ß", "İ", "kPEPE", "btc", "BTC ", " BTC", "BTC/USD", "@1", "a" * 33, "x" * 5000,
    "0x" + "f" * 32, "0x" + "g" * 32, "{}", "[]",
)  # fmt: skip
HOSTILE_NUMBERS = (
    0, -1, 1, 2**31, -(2**31), 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**64), 10**30, -(10**30), 10**400,
    0.1, -0.5, 1.5, 1e-320, 1e308, -1e308, float("nan"), float("inf"), float("-inf"),
)  # fmt: skip
_SCALARS = st.one_of(
    st.sampled_from(HOSTILE_TEXT),
    st.sampled_from(HOSTILE_NUMBERS),
    st.booleans(),
    st.none(),
    st.text(max_size=40),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
)


def _nest(depth: int) -> Any:
    value: Any = "x"
    for i in range(depth):
        value = [value] if i % 2 else {"a": value}
    return value


HOSTILE = st.one_of(
    _SCALARS,
    st.lists(_SCALARS, max_size=4),
    st.dictionaries(st.text(max_size=8), _SCALARS, max_size=4),
    st.integers(min_value=2, max_value=40).map(_nest),
)
# The values most likely to break a handler (NUL bytes PostgreSQL refuses, integers past 64 bits, unicode digits,
# lone surrogates, non-finite numbers, wrong JSON types). The sweep sends each of them in every field of every route.
CORE = (
    "\x00", "BTC\x00", "x" * 5000, "", "١٢٣", "\ud800", "NaN", "-Infinity", "-1", "0", "1e999999",
    "99999999999999999999999999", 2**63, 10**30, -(2**63) - 1, 0.5, 1e308, None, True, [], {}, _nest(40), "🚀",
)  # fmt: skip
MISSING = object()  # a sweep case: the field left out
METHOD = "<method>"  # a sweep case: the route called with another HTTP method
Target = tuple[str, Any] | None  # (field, value) a sweep request forces; the other fields are drawn valid
HOSTILE_SLOTS = 6


def spec_strategy(spec: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values valid for the JSON schema `spec` (the subset drf-spectacular emits)."""
    if "enum" in spec:
        return st.sampled_from(spec["enum"])
    kind = spec.get("type", "string")
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        lo, hi = spec.get("minimum", -(10**6)), spec.get("maximum", 10**6)
        return st.integers(min_value=lo, max_value=max(lo, hi))
    if spec.get("format") == "decimal":
        return st.decimals(min_value=Decimal("0.0001"), max_value=Decimal(100_000), places=4).map(str)
    if "pattern" in spec:
        return st.from_regex(spec["pattern"], fullmatch=True).filter(lambda s: len(s) < 200)
    return st.text(min_size=spec.get("minLength", 1), max_size=min(spec.get("maxLength", 40), 40))


def op_fields(op: Operation) -> dict[str, dict[str, Any]]:
    """Every named input of `op`: path and query parameters and body properties, with their schemas."""
    fields = {p["name"]: p.get("schema", {}) for p in op.params}
    fields.update((op.body or {}).get("properties", {}))
    return fields


class Draws:
    """What one example builds its request from, drawn up front in a shape that depends only on the route.

    Hypothesis insists that the same choices lead to the same draws; the request also depends on outside state
    (ids in the database, keys used before, the sweep's case), so that state only ever steers how these values
    are combined (through `rnd`), never what Hypothesis is asked for. `rnd` is a uniform Random: bounded
    `st.integers` favours its endpoints, which would turn every "5% of the time" into far more than 5%."""

    def __init__(self, data: st.DataObject, op: Operation) -> None:
        self.rnd: random.Random = data.draw(st.randoms(use_true_random=True))
        self.typed = {name: data.draw(spec_strategy(spec)) for name, spec in sorted(op_fields(op).items())}
        self.hostiles = data.draw(st.lists(HOSTILE, min_size=HOSTILE_SLOTS, max_size=HOSTILE_SLOTS))
        self.extra = data.draw(st.dictionaries(st.text(min_size=1, max_size=12), HOSTILE, min_size=1, max_size=3))
        self.uuid = str(data.draw(st.uuids()))
        self.bad_key = data.draw(st.one_of(st.sampled_from(IDEMPOTENCY_BAD), st.text(max_size=20)))

    def chance(self, percent: float) -> bool:
        return self.rnd.random() * 100 < percent

    def pick(self, values: Any) -> Any:
        return values[self.rnd.randrange(len(values))]

    def hostile(self) -> Any:
        """A hostile value: one of the core list (the sweep sends each in every field) or one drawn for this example."""
        return self.pick(CORE) if self.chance(40) else self.pick(self.hostiles)

    def decimal(self, lo: str, hi: str, places: int) -> str:
        value = Decimal(str(self.rnd.uniform(float(lo), float(hi))))
        return str(value.quantize(Decimal(1).scaleb(-places)))


@dataclass
class World:
    """What requests draw real values from: mids, users, live order ids and sessions, refreshed as the run goes."""

    mids: dict[str, Decimal]
    prices: dict[str, list[str]]
    sizes: dict[str, list[str]]
    users: list[int]
    wallet: Any
    order_ids: list[int] = field(default_factory=list)
    cloids: list[str] = field(default_factory=list)
    public_ids: list[str] = field(default_factory=list)

    def refresh(self) -> None:
        rows = list(Order.objects.order_by("-id").values_list("id", "cloid", "state")[:200])
        resting = [r for r in rows if r[2] == OrderState.RESTING]
        # Resting orders twice over: cancel and modify get past "not modifiable" more often.
        self.order_ids = [r[0] for r in rows + resting + resting]
        self.cloids = [r[1] for r in rows + resting + resting if r[1]]


def valid_prices_and_sizes(symbol: str, mid: Decimal) -> tuple[list[str], list[str]]:
    """Tick-valid prices around the mid (below it a buy rests, above it a buy crosses, and the other way round),
    and lot-valid sizes worth $15-$300."""
    spec = meta.asset_spec(symbol)
    assert spec is not None, symbol
    factors = ("0.95", "0.97", "0.99", "0.999", "1.001", "1.01", "1.03", "1.05")
    prices = [str(round_price(px=mid * Decimal(f), spec=spec, mode="nearest")) for f in factors]
    sizes = [str(round_size(sz=Decimal(usd) / mid, spec=spec)) for usd in (15, 40, 120, 300)]
    return prices, sizes


def _symbol(context: dict[str, Any], d: Draws) -> str:
    """The request's own symbol when it has a simulated one (a price for BTC on an ETH order tests little)."""
    symbol = context.get("symbol")
    return symbol if symbol in SYMBOLS and d.chance(90) else d.pick(SYMBOLS)


def _price(world: World, d: Draws, context: dict[str, Any]) -> str:
    symbol = _symbol(context, d)
    if d.chance(65):
        return d.pick(world.prices[symbol])
    mid = world.mids[symbol]
    factor = Decimal(d.pick(("0.5", "0.9", "0.95", "0.97", "0.99", "1", "1.01", "1.03", "1.05", "1.2")))
    return str((mid * factor).quantize(Decimal(1).scaleb(-d.rnd.randrange(7))))


def named_value(name: str, world: World, d: Draws, context: dict[str, Any] | None = None) -> Any:
    """A realistic value for fields whose meaning the schema type does not carry; NotImplemented otherwise.
    `context` holds the fields drawn so far for the same request."""
    context = context or {}
    if name in ("symbol", "coin"):
        return d.pick((*SYMBOLS, *SYMBOLS, *SYMBOLS, "btc", "kPEPE", "DOGE"))
    if name == "coins":
        return ",".join(d.pick(SYMBOLS) for _ in range(1 + d.rnd.randrange(3)))
    if name in ("price", "tp_price", "sl_price", "trigger_price"):
        return _price(world, d, context)
    if name == "size":
        return d.pick(world.sizes[_symbol(context, d)]) if d.chance(75) else d.decimal("0.0001", "2", 5)
    if name == "size_usd":
        return d.pick(("11", "25", "50", "150")) if d.chance(70) else d.decimal("1", "5000", 2)
    if name == "trailing_pct":
        return d.decimal("0.1", "50", 2)
    lists = {"order_id": world.order_ids, "cloid": world.cloids, "public_id": world.public_ids, "user_id": world.users}
    if lists.get(name):
        return d.pick(lists[name])
    if name == "address":
        return d.pick((world.wallet.address, world.wallet.address.lower(), Account.create().address))
    if name == "kind":
        return d.pick(BreakerKind.values)
    if name == "leverage":
        return 1 + d.rnd.randrange(10 if d.chance(80) else 60)
    if name in ("start", "end"):
        return int(time.time() * 1000) - d.rnd.randrange(3 * 86_400_000)
    return NotImplemented


def field_value(
    name: str,
    spec: dict[str, Any],
    world: World,
    d: Draws,
    *,
    hostile: float = 10,
    context: dict[str, Any] | None = None,
) -> Any:
    if d.chance(hostile):
        return d.hostile()
    if spec.get("nullable") and d.chance(5):
        return None
    value = named_value(name, world, d, context)
    return d.typed.get(name) if value is NotImplemented else value


# How often a clean body carries an optional field: each of these adds a rule the order must also pass
# (tp/sl on the right side of the price, reduce-only against a position, leverage within the asset's maximum).
CLEAN_OPTIONAL = {"price": 90, "tp_price": 15, "sl_price": 15, "reduce_only": 30, "leverage": 30}


def body_object(spec: dict[str, Any], world: World, d: Draws, target: Target = None) -> dict[str, Any]:
    required = set(spec.get("required", []))
    body: dict[str, Any] = {}
    # A clean body (no hostile field, most optional fields) half the time, so whole valid requests are common.
    clean = target is not None or d.chance(50)
    hostile = 0 if clean else 10
    for name, prop in spec.get("properties", {}).items():
        if target is not None and name == target[0]:
            if target[1] is not MISSING:
                body[name] = target[1]
            continue
        optional = CLEAN_OPTIONAL.get(name, 75) if clean else 50
        if d.chance(100 if target is not None and name in required else 97 if name in required else optional):
            body[name] = field_value(name, prop, world, d, hostile=hostile, context=body)
    if not clean and d.chance(8):
        body.update({k: v for k, v in d.extra.items() if k not in body})
    return body


def _dumps(value: Any, d: Draws) -> bytes:
    """stdlib json on purpose: it writes NaN/Infinity tokens, integers of any size and lone-surrogate escapes."""
    text = json.dumps(value, allow_nan=True, ensure_ascii=d.chance(50))
    return text.encode("utf-8", "surrogatepass")


RAW_BODIES = (
    b"", b"{", b"}", b"[", b"null", b"true", b"0", b'"x"', b"[]", b"[{}]", b"{}", b'{"a":1,}', b"{'a': 1}",
    b'{"side": NaN}', b'{"size": Infinity}', b'{"symbol": "\\ud800"}', b'{"symbol": "BTC", "symbol": "ETH"}',
    b"\xff\xfe\x00{", b"\xef\xbb\xbf{}", b'{"size": 1e999999}', b'{"price": -0}', b"\x00", b" " * 2000,
    b"[" * 33 + b"]" * 33, b"[" * 2000 + b"]" * 2000, b'{"a":' * 1000 + b"1" + b"}" * 1000,
    b"[" * 200_000, b'{"reason": "' + b"x" * 100_000 + b'"}', b"x" * 3_000_000,
)  # fmt: skip
CONTENT_TYPES = (
    "application/json; charset=latin-1", "application/json; charset=utf-16", "text/plain",
    "application/x-www-form-urlencoded", "multipart/form-data; boundary=xyz", "multipart/form-data",
    "application/xml", "application/vnd.api+json", "application/octet-stream", "*/*", "application/json;;;",
)  # fmt: skip


def body_bytes(op: Operation, world: World, d: Draws) -> tuple[bytes, str]:
    if op.body is not None and d.chance(80):
        raw = _dumps(body_object(op.body, world, d), d)
    elif d.chance(60):
        raw = d.pick(RAW_BODIES)
    else:
        raw = _dumps(d.hostile(), d)
    if not d.chance(6):
        return raw, "application/json"
    content_type = d.pick(CONTENT_TYPES)
    if content_type.startswith("application/x-www-form"):
        raw = urlencode({"symbol": "BTC", "side": "buy", "size": "0.001"}).encode()
    elif content_type.startswith("multipart"):
        raw = d.pick((b"--xyz\r\nbroken", raw, b"--xyz--\r\n"))
    return raw, content_type


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, allow_nan=True)


def query_string(op: Operation, world: World, d: Draws, target: Target = None) -> str:
    pairs: list[tuple[str, str]] = []
    for param in (p for p in op.params if p.get("in", "query") == "query"):
        name, hostile = param["name"], 0 if target else 10
        if target is not None and name == target[0]:
            if target[1] is not MISSING:
                pairs.append((name, _as_text(target[1])))
        elif d.chance(100 if param.get("required") and target else 95 if param.get("required") else 55):
            pairs.append((name, _as_text(field_value(name, param.get("schema", {}), world, d, hostile=hostile))))
    if target is not None:
        return urlencode(pairs, encoding="utf-8", errors="surrogatepass")
    if d.chance(6):
        name = d.pick(("x", "coin", "limit", "format", "__proto__", "ä", "a" * 300))
        pairs.append((name, _as_text(d.hostile())))
    if pairs and d.chance(4):
        pairs.append(pairs[0])  # a repeated parameter
    return urlencode(pairs, encoding="utf-8", errors="surrogatepass")


def concrete_path(op: Operation, world: World, d: Draws, target: Target = None) -> str:
    path = op.path
    for param in (p for p in op.params if p.get("in") == "path"):
        value = named_value(param["name"], world, d)
        if target is not None and target[0] == param["name"]:
            value = _as_text(target[1])
        elif value is NotImplemented or (target is None and d.chance(30)):
            value = _as_text(d.hostile())
        path = path.replace("{" + param["name"] + "}", quote(str(value), safe="", errors="surrogatepass"))
    return path


IDEMPOTENCY_BAD = (
    "", "short", "x" * 129, "has space 12345", "ünïcödé-key-1234", "-leadingdash1", "\t\n12345678", "a/b/c/d/e/f",
    "0" * 7, "key\x00key12345", "🚀🚀🚀🚀🚀🚀🚀🚀",
)  # fmt: skip


def idempotency_key(d: Draws, used: list[str], target: Target = None) -> str | None:
    if target is not None and target[0] == "Idempotency-Key":
        return None if target[1] is MISSING else target[1]
    if target is not None or d.chance(78):
        used.append(d.uuid)
        return d.uuid
    if d.chance(50) and used:
        return d.pick(used[-50:])  # the same key again: a replay, a 409 or a 422
    if d.chance(30):
        return None
    return d.bad_key


def siwe_body(client: APIClient, world: World, d: Draws) -> tuple[bytes, Any]:
    """A real challenge for `client`'s session signed by a known wallet, tampered with half the time."""
    challenge = client.get("/auth/nonce", {"address": world.wallet.address})
    message = challenge.json().get("message", "") if challenge.status_code == 200 else ""
    signature = "0x" + world.wallet.sign_message(encode_defunct(text=message)).signature.hex().removeprefix("0x")
    if d.chance(50):
        mutate = d.pick(("signature", "truncate", "nonce", "append", "case", "swap"))
        if mutate == "signature":
            signature = signature[:-3] + d.pick(("000", "zzz", "", "1b1"))
        elif mutate == "truncate":
            message = message[: d.rnd.randrange(len(message) + 1)]
        elif mutate == "nonce":
            message = message.replace("Nonce: ", "Nonce: " + d.pick(("x", "\x00", "🚀", "0" * 300)))
        elif mutate == "append":
            message += d.pick(("\n", "\nResources:\n- x", "\x00", "\nExpiration Time: yesterday"))
        elif mutate == "case":
            message = message.upper()
        else:
            message, signature = signature, message
    return _dumps({"message": message, "signature": signature}, d), challenge


# --- sending and judging ------------------------------------------------------------------------------------------
@dataclass
class Sent:
    role: str
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    content_type: str


@dataclass
class Failure:
    sent: Sent
    status: int | str
    problem: str
    response: str
    tracebacks: list[str]

    def describe(self) -> str:
        query = f"?{self.sent.query[:300]}" if self.sent.query else ""
        lines = [
            f"[{self.problem}] {self.sent.role} {self.sent.method} {self.sent.path}{query}",
            f"  headers={self.sent.headers!r} content-type={self.sent.content_type!r}",
            f"  body({len(self.sent.body)} bytes)={self.sent.body[:300]!r}",
            f"  -> {self.status}: {self.response[:500]}",
        ]
        # The innermost frames and the exception: where the handler broke (the test client's frames come first).
        tail = ["\n".join(tb.rstrip().splitlines()[-24:]) for tb in self.tracebacks[-1:]]
        return "\n".join(lines + ["  " + tb.replace("\n", "\n  ") for tb in tail])


class ErrorRecords(logging.Handler):
    """ERROR log lines with tracebacks emitted while one request runs (the boundaries that answer 500 log them)."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.tracebacks: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            self.tracebacks.append("".join(traceback.format_exception(*record.exc_info)))


def _routes(path: str) -> bool:
    try:
        resolve(unquote(path))  # what a server matches: PATH_INFO is decoded (an encoded "/" splits the path)
    except Resolver404:
        return False  # no route: Django's own 404 page, not one of our APIs
    return True


def error_shape_problem(response: Any) -> str:
    """What is wrong with an API error response, or "" when it is `{"type":"error","code":...,"message":...}`."""
    if not response.get("Content-Type", "").startswith("application/json"):
        return f"error not JSON ({response.get('Content-Type')!r})"
    try:
        body = json.loads(response.content)
    except ValueError:
        return "error body is not valid JSON"
    if not isinstance(body, dict) or body.get("type") != "error":
        return 'error body lacks "type":"error"'
    if not isinstance(body.get("code"), str) or not body["code"] or not isinstance(body.get("message"), str):
        return "error body lacks a string code/message"
    return ""


class AsgiLoop:
    """One event loop for the whole run, as an ASGI server has, for the async views (/readyz, /system).

    Django's sync test client runs an async view on a new event loop per request; its `sync_to_async(...,
    thread_sensitive=False)` work then runs on a new thread each time, and every such thread keeps the pooled
    database connection it took (/readyz's database ping): after DATABASE_POOL_MAX_SIZE requests the pool is empty
    and every later request waits DATABASE_POOL_TIMEOUT_SEC. Under uvicorn the loop and its executor threads live
    on, so the same threads (and connections) serve every request."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fuzz-asgi", daemon=True)
        self.thread.start()
        self.twins: dict[int, AsyncClient] = {}

    def request(self, client: APIClient, sent: Sent, url: str, extra: dict[str, Any]) -> Any:
        twin = self.twins.get(id(client))
        if twin is None:
            twin = self.twins[id(client)] = AsyncClient()
            twin.cookies = client.cookies  # the same session as the sync client of this role
        call = twin.generic(sent.method, url, data=sent.body, headers=sent.headers, **extra)
        return asyncio.run_coroutine_threadsafe(call, self.loop).result(timeout=60)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


def _is_async_view(path: str) -> bool:
    try:
        return iscoroutinefunction(resolve(unquote(path)).func)
    except Resolver404:
        return False


@dataclass
class Fuzzer:
    clients: dict[str, APIClient]
    disposable: dict[str, Callable[[], APIClient]]
    world: World
    records: ErrorRecords
    asgi: AsgiLoop
    statuses: dict[tuple[str, str], Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    failures: list[Failure] = field(default_factory=list)
    logged: list[Failure] = field(default_factory=list)  # answered < 500, but an exception was logged on the way
    keys: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    sent_count: int = 0

    def client_for(self, op: Operation, d: Draws, target: Target) -> tuple[str, APIClient]:
        # The sweep goes as an admin (past every permission check, with an agent): its point is the field values.
        role = "admin" if target is not None else d.pick(("anonymous", "trader", "trader", "trader", "admin", "admin"))
        if op.key == ("POST", "/auth/verify") or (op.disruptive and role == "anonymous"):
            return role, APIClient()
        if op.disruptive:
            return role, self.disposable[role]()
        if role != "anonymous" and target is None and d.chance(4):
            role += "+csrf"  # enforces CSRF like a browser that lost its token
        return role, self.clients[role]

    def draw(self, op: Operation, d: Draws, target: Target = None) -> tuple[Sent, APIClient]:
        role, client = self.client_for(op, d, target)
        headers: dict[str, str] = {}
        body, content_type = b"", ""
        if op.method == "POST" or (target is not None and target[0] == METHOD):
            key = idempotency_key(d, self.keys[role], target)
            if key is not None:
                headers["Idempotency-Key"] = key
            if target is not None:
                body = _dumps(body_object(op.body, self.world, d, target), d) if op.body else b""
                content_type = "application/json"
            elif op.key == ("POST", "/auth/verify") and d.chance(40):
                body, challenge = siwe_body(client, self.world, d)
                nonce = Sent(role, "GET", "/auth/nonce", f"address={self.world.wallet.address}", {}, b"", "")
                self.sent_count += 1
                self.statuses[NONCE.key][challenge.status_code] += 1
                self.judge(NONCE, nonce, challenge)
                content_type = "application/json"
            else:
                body, content_type = body_bytes(op, self.world, d)
        if target is None and d.chance(3):
            headers["Accept"] = d.pick(("text/html", "application/xml", "*/*", "x/y;q=bad"))
        if op.path == "/metrics" and target is None and d.chance(50):
            headers["Authorization"] = d.pick(("Bearer ", "Bearer x", "Basic Zm9vOmJhcg==", "", "Bearer \x00"))
        path, query = concrete_path(op, self.world, d, target), query_string(op, self.world, d, target)
        method = target[1] if target is not None and target[0] == METHOD else op.method
        return Sent(role, method, path, query, headers, body, content_type), client

    def send(self, op: Operation, sent: Sent, client: APIClient) -> None:
        self.sent_count += 1
        self.records.tracebacks.clear()
        url = sent.path + (f"?{sent.query}" if sent.query else "")
        extra: dict[str, Any] = {"content_type": sent.content_type} if sent.body else {}
        try:
            if _is_async_view(sent.path):
                response = self.asgi.request(client, sent, url, extra)
            else:
                response = client.generic(sent.method, url, data=sent.body, headers=sent.headers, **extra)
        except Exception as exc:  # the test client re-raises what a view let escape: a server would answer 500
            tbs = [*self.records.tracebacks, "".join(traceback.format_exception(exc))]
            self.failures.append(Failure(sent, "raised", "5xx", repr(exc), tbs))
            self.statuses[op.key][500] += 1
            return
        self.statuses[op.key][response.status_code] += 1
        self.judge(op, sent, response)

    def judge(self, op: Operation, sent: Sent, response: Any) -> None:
        text = response.content.decode("utf-8", "replace")
        if response.status_code >= 500:
            self.failures.append(Failure(sent, response.status_code, "5xx", text, list(self.records.tracebacks)))
            return
        if self.records.tracebacks:
            self.logged.append(Failure(sent, response.status_code, "logged", text, list(self.records.tracebacks)))
        if response.status_code >= 400 and op.json_api and sent.method != "HEAD" and _routes(sent.path):
            problem = error_shape_problem(response)
            if problem:
                self.failures.append(Failure(sent, response.status_code, problem, text, []))

    def run(self, op: Operation, *, budget: int, round_no: int) -> None:
        """`budget` requests drawn at random (mostly valid, some hostile)."""
        self.world.refresh()
        _examples(op, f"{op.method} {op.path} {round_no}", budget, lambda d: self.send(op, *self.draw(op, d)))

    def sweep(self, op: Operation) -> int:
        """Every field (path, query, body, Idempotency-Key) of `op` meets every CORE value once, the others valid."""
        self.world.refresh()
        cases = sweep_cases(op)
        done = 0

        def step(d: Draws) -> None:
            nonlocal done
            if done < len(cases):
                self.send(op, *self.draw(op, d, cases[done]))
                done += 1  # after the send: a draw Hypothesis abandons half-way is drawn again

        for attempt in range(5):
            if done == len(cases):
                break
            _examples(op, f"sweep {op.method} {op.path} {attempt}", len(cases) - done, step)
        assert done == len(cases), f"sweep of {op.method} {op.path} stopped at {done} of {len(cases)}"
        return done


def sweep_cases(op: Operation) -> list[tuple[str, Any]]:
    cases: list[tuple[str, Any]] = []
    for param in op.params:
        missing = () if param.get("in") == "path" else (MISSING,)  # a path without its segment is another route
        cases += [(param["name"], value) for value in (*CORE, *missing)]
    for name in (op.body or {}).get("properties", {}):
        cases += [(name, value) for value in (*CORE, MISSING)]
    if op.method == "POST":
        cases += [("Idempotency-Key", value) for value in (*IDEMPOTENCY_BAD, MISSING)]
    cases += [
        (METHOD, method) for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS") if method != op.method
    ]
    return cases


def _examples(op: Operation, label: str, count: int, step: Callable[[Draws], None]) -> None:
    """Run `step` on `count` Hypothesis examples, seeded from `label` so every run draws the same requests."""

    @seed(zlib.crc32(label.encode()))
    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def one(data: st.DataObject) -> None:
        step(Draws(data, op))

    one()


# --- the world --------------------------------------------------------------------------------------------------
def _client(user: User | None, *, csrf: bool = False) -> APIClient:
    client = APIClient(enforce_csrf_checks=csrf)
    if user is not None:
        client.force_login(user)
    return client


def _tracked_client(user: User, world: World | None = None) -> APIClient:
    """A fresh session, tracked like a wallet sign-in (so /auth/sessions lists it); with `world`, one the fuzzed
    revocations may pick."""
    client = _client(user)
    session = client.session
    row = account_services.session_start(
        user=user, session_key=session.session_key or "", expires_at=session.get_expiry_date(), ip="127.0.0.1",
        user_agent="fuzz", is_demo=False,
    )  # fmt: skip
    if world is not None:
        world.public_ids.append(row.public_id)
    return client


def _store_readings() -> None:
    """Conviction readings for every simulated symbol, so /alpha/conviction answers 200, not 503-no-reading-yet."""
    now = int(time.time() * 1000)
    envelopes, index = {}, {}
    for symbol in SYMBOLS:
        reading = {
            "symbol": symbol, "score": 72.0, "bias": "LONG", "ts": now, "signal_ts": now,
            "readings": [[now - 200 * i, 72.0, "LONG"] for i in range(10)], "rolling_avg": 72.0, "components": {},
            "streak": {"side": "LONG", "count": 3},
        }  # fmt: skip
        env = make_envelope(
            event_type="alpha_conviction", symbol=symbol, ts_ms=now, source="alpha", seq=1, data=reading
        )
        envelopes[symbol] = env.encode().decode()
        index[symbol] = {"score": 72.0, "ts": now}
    alpha_services.conviction_store_many(envelopes=envelopes, index=index)


@pytest.fixture
def sim_thread(settings: Any) -> Iterator[SimulatorThread]:
    """The execution suite's simulator without the venue's IP rate limit: thousands of requests in a minute would
    otherwise turn most of the run into venue 429s and tripped breakers (the clients' budgets are raised too)."""
    with venue_simulator(settings, symbols=list(SYMBOLS), rate_limits=False) as runner:
        yield runner


@pytest.fixture
def fuzzer(hot: Any, fresh_books: None, settings: Any) -> Iterator[Fuzzer]:
    # Per-user and per-IP quotas and the venue request budgets (sized for the real exchange) would refuse almost
    # everything after the first seconds of this run, and it would test little past the refusal. The run is about
    # what the handlers do with their input, so they are raised out of the way; the simulator takes the load.
    for name in ("EXECUTION_ORDERS_PER_MIN", "EXECUTION_CANCELS_PER_MIN", "EXECUTION_READS_PER_MIN",
                 "AUTH_RATE_LIMIT_PER_IP", "AUTH_RATE_LIMIT_PER_ADDRESS", "VENUE_WEIGHT_PER_MIN",
                 "VENUE_USER_WEIGHT_PER_MIN", "AGGREGATOR_UPSTREAM_BUDGET_METADATA_PER_MIN",
                 "AGGREGATOR_UPSTREAM_BUDGET_ORDERBOOK_PER_MIN",
                 "AGGREGATOR_UPSTREAM_BUDGET_CANDLES_PER_MIN"):  # fmt: skip
        setattr(settings, name, 100_000)
    settings.RISK_AUTO_MODE_ENABLED = True  # so /alpha/autonomous/trigger can get past the global gate
    people = {role: make_trader(role=role) for role in ("trader", "admin")}
    for user, wallet in people.values():
        approve_agent(user, wallet)
    mids = {s: (Decimal(hot(s).book["bids"][0][0]) + Decimal(hot(s).book["asks"][0][0])) / 2 for s in SYMBOLS}
    lots = {s: valid_prices_and_sizes(s, mid) for s, mid in mids.items()}
    prices, sizes = {s: p for s, (p, _) in lots.items()}, {s: z for s, (_, z) in lots.items()}
    users = [u.pk for u, _ in people.values()] + [0, 10**9]
    world = World(mids=mids, prices=prices, sizes=sizes, users=users, wallet=Account.create())
    _store_readings()
    clients = {"anonymous": APIClient()}
    for role, (user, _) in people.items():
        clients[role] = _tracked_client(user)
        clients[f"{role}+csrf"] = _client(user, csrf=True)
    spares = {role: make_trader(role=role) for role in ("trader", "admin")}
    for user, wallet in spares.values():
        approve_agent(user, wallet)
    disposable = {role: (lambda u=user: _tracked_client(u, world)) for role, (user, _) in spares.items()}
    records, asgi = ErrorRecords(), AsgiLoop()
    logging.getLogger().addHandler(records)
    try:
        yield Fuzzer(clients=clients, disposable=disposable, world=world, records=records, asgi=asgi)
    finally:
        logging.getLogger().removeHandler(records)
        asgi.close()


def test_every_route_survives_hostile_input_without_a_server_error(fuzzer: Fuzzer) -> None:
    schema = fuzzer.clients["anonymous"].get("/api/schema?format=json").json()
    operations = schema_operations(schema)
    schema_routes = {op.key for op in operations}
    everything = sorted([*operations, *EXTRA_OPERATIONS], key=round_order)
    started = time.monotonic()
    swept = sum(fuzzer.sweep(op) for op in everything)
    for round_no in range(ROUNDS):
        for op in everything:
            total = BUDGETS.get(op.key, DEFAULT_BUDGET if op.in_schema else EXTRA_BUDGET)
            fuzzer.run(op, budget=total // ROUNDS + (total % ROUNDS if round_no == 0 else 0), round_no=round_no)
    elapsed = time.monotonic() - started

    summary = "\n".join(f"{m} {p}: {dict(sorted(c.items()))}" for (m, p), c in sorted(fuzzer.statuses.items()))
    print(f"\n{fuzzer.sent_count} requests ({swept} in the sweep) in {elapsed:.1f}s over {len(fuzzer.statuses)} routes")
    print(summary)
    # A request answered below 500 after an exception was logged on its way (a swallowed failure: an event not
    # published, a 202 "reached the venue, then failed") is a server error too, only hidden from the status.
    broken = fuzzer.failures + fuzzer.logged
    assert not broken, (
        f"{len(fuzzer.failures)} failing requests, {len(fuzzer.logged)} answered after logging an exception:\n\n"
        + "\n\n".join(f.describe() for f in broken)
    )
    assert fuzzer.sent_count >= MIN_REQUESTS
    assert {k for k in fuzzer.statuses if k in schema_routes} == schema_routes
    assert {op.key for op in EXTRA_OPERATIONS} <= set(fuzzer.statuses)
    # Real coverage, not only refusals: orders reached the venue, and every schema read answered 200 at least once.
    assert fuzzer.statuses[("POST", "/trading/order")][201] > 0
    assert Order.objects.exclude(venue_oid=None).exists()
    for (method, path), counts in fuzzer.statuses.items():
        if method == "GET" and (method, path) in schema_routes:
            assert counts[200] > 0, f"{method} {path} never answered 200: {dict(counts)}"

    report = audit_verify()
    assert report.ok, f"audit chain broken at row {report.first_bad_id}: {report.problem}"
    assert report.count > 0
    out = io.StringIO()
    call_command("verify_audit", stdout=out)  # the operator's command: exits 1 naming the first bad row
    assert out.getvalue().startswith(f"OK rows={report.count} head={report.head_hash}")
    assert list(IdempotencyRecord.objects.filter(response_status__gte=500).values("key", "endpoint")) == []


def test_the_schema_walk_finds_parameters_and_inlines_bodies() -> None:
    component = {"type": "object", "properties": {"side": {"allOf": [{"$ref": "#/components/schemas/S"}]}}}
    schema = {
        "paths": {
            "/x/{symbol}": {"get": {"parameters": [{"in": "path", "name": "symbol", "schema": {"type": "string"}}]}},
            "/y": {"post": {"requestBody": {"content": {"application/json": {"schema": {"$ref": "#/x/B"}}}}}},
        },
        "components": {"schemas": {"B": component, "S": {"enum": ["buy", "sell"], "type": "string"}}},
    }
    ops = {op.key: op for op in schema_operations(schema)}
    assert set(ops) == {("GET", "/x/{symbol}"), ("POST", "/y")}
    assert ops[("GET", "/x/{symbol}")].params[0]["name"] == "symbol"
    assert ops[("POST", "/y")].body == {
        "type": "object",
        "properties": {"side": {"enum": ["buy", "sell"], "type": "string"}},
    }


def test_an_error_body_must_carry_type_code_and_message() -> None:
    assert error_shape_problem(JsonResponse({"type": "error", "code": "x", "message": "m"}, status=400)) == ""
    assert error_shape_problem(JsonResponse({"detail": "nope"}, status=400)) == 'error body lacks "type":"error"'
    assert error_shape_problem(JsonResponse({"type": "error", "code": "", "message": "m"}, status=400))
    assert error_shape_problem(HttpResponse("<h1>405</h1>", status=405)).startswith("error not JSON")
