"""Strict, typed readers for settings taken from the environment.

Every reader names the variable and the accepted values when a value is wrong, and raises
`ImproperlyConfigured`, which stops start-up (``manage.py`` and the ASGI app both import settings first).
Empty strings count as "unset" so that a blank line in an env file means "use the default".
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class Env:
    """Reads variables from one mapping (``os.environ`` by default) and remembers what it read.

    `renamed` maps old variable names to their current ones: an old name still works when the current one is unset
    (it is listed in `deprecated`, old → current, for a system check to warn about); both set to different values is
    an error naming both.
    """

    def __init__(self, source: Mapping[str, str] | None = None, *, renamed: Mapping[str, str] | None = None) -> None:
        self._source = os.environ if source is None else source
        self._old_names = {new: old for old, new in (renamed or {}).items()}
        self.read: dict[str, str] = {}
        self.deprecated: dict[str, str] = {}
        self._given_as: dict[str, str] = {}

    def _get(self, name: str) -> str | None:
        value = self._source.get(name)
        if value is None:
            return None
        value = value.strip()
        return value or None

    def raw(self, name: str) -> str | None:
        value = self._get(name)
        old = self._old_names.get(name)
        old_value = self._get(old) if old else None
        if old and old_value is not None:
            if value is not None and value != old_value:
                raise ImproperlyConfigured(
                    f"Environment variables {name}={value!r} and {old}={old_value!r} are both set: {old} is the old "
                    f"name of {name}; keep only {name}."
                )
            self.deprecated[old] = name
            if value is None:
                value = old_value
                self._given_as[name] = old
        if value is None:
            return None
        self.read[self._given_as.get(name, name)] = value
        return value

    def is_set(self, name: str) -> bool:
        return self.raw(name) is not None

    def _fail(self, name: str, value: str, accepted: str) -> ImproperlyConfigured:
        shown = self._given_as.get(name, name)
        return ImproperlyConfigured(f"Environment variable {shown}={value!r} is invalid: expected {accepted}.")

    def text(self, name: str, default: str = "") -> str:
        value = self.raw(name)
        return default if value is None else value

    def flag(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise self._fail(name, value, "one of true/false, 1/0, yes/no, on/off")

    def integer(self, name: str, default: int, *, min_value: int | None = None, max_value: int | None = None) -> int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            parsed = int(value, 10)
        except ValueError:
            raise self._fail(name, value, _range_text("an integer", min_value, max_value)) from None
        if (min_value is not None and parsed < min_value) or (max_value is not None and parsed > max_value):
            raise self._fail(name, value, _range_text("an integer", min_value, max_value))
        return parsed

    def number(
        self, name: str, default: float, *, min_value: float | None = None, max_value: float | None = None
    ) -> float:
        value = self.raw(name)
        if value is None:
            return default
        try:
            parsed = float(value)
        except ValueError:
            raise self._fail(name, value, _range_text("a number", min_value, max_value)) from None
        if parsed != parsed or parsed in (float("inf"), float("-inf")):
            raise self._fail(name, value, _range_text("a finite number", min_value, max_value))
        if (min_value is not None and parsed < min_value) or (max_value is not None and parsed > max_value):
            raise self._fail(name, value, _range_text("a number", min_value, max_value))
        return parsed

    def decimal(self, name: str, default: str, *, min_value: Decimal | None = None) -> Decimal:
        value = self.raw(name)
        text = default if value is None else value
        try:
            parsed = Decimal(text)
        except InvalidOperation:
            raise self._fail(name, text, "a decimal number") from None
        if not parsed.is_finite() or (min_value is not None and parsed < min_value):
            raise self._fail(name, text, _range_text("a finite decimal number", min_value, None))
        return parsed

    def choice(self, name: str, default: str, choices: Iterable[str]) -> str:
        allowed = list(choices)
        value = self.raw(name)
        if value is None:
            return default
        if value.lower() not in allowed:
            raise self._fail(name, value, "one of " + ", ".join(allowed))
        return value.lower()

    def csv(self, name: str, default: Iterable[str] = ()) -> list[str]:
        value = self.raw(name)
        if value is None:
            return list(default)
        return [item.strip() for item in value.split(",") if item.strip()]

    def url(self, name: str, default: str = "", *, schemes: Iterable[str]) -> str:
        allowed = tuple(schemes)
        value = self.raw(name)
        if value is None:
            return default
        parts = urlsplit(value)
        if parts.scheme not in allowed or not (parts.netloc or parts.path):
            raise self._fail(name, value, "a URL with scheme " + " or ".join(f"{s}://" for s in allowed))
        return value

    def origin_list(self, name: str, default: Iterable[str] = ()) -> list[str]:
        """Full origins (scheme://host[:port]); a bare host or a path is refused."""
        origins = self.csv(name, default)
        for origin in origins:
            if origin == "*":
                continue
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
                raise self._fail(name, origin, "comma-separated origins like https://terminal.example.com:8443")
        return [o.rstrip("/") for o in origins]


def _range_text(kind: str, low: object, high: object) -> str:
    if low is not None and high is not None:
        return f"{kind} between {low} and {high}"
    if low is not None:
        return f"{kind} >= {low}"
    if high is not None:
        return f"{kind} <= {high}"
    return kind
