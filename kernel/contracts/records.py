"""Dataclass values as plain dicts for the wire, one level deep."""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

# Field names per dataclass, filled on first use. A plain dict lookup: `Envelope.as_dict` runs once per published
# event, and `dataclasses.fields()` on every call would cost several times the dict it builds.
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type[DataclassInstance]) -> tuple[str, ...]:
    names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


def fields_dict(obj: DataclassInstance) -> dict[str, Any]:
    """`obj`'s fields by name in declaration order, the values as they are. Unlike `dataclasses.asdict` it does not
    recurse: nested values are neither deep-copied (slow on hot paths) nor turned into dicts behind their own
    `as_dict`, so a caller shapes the few fields that need it and keeps the rest."""
    cls = type(obj)
    names = _FIELD_NAMES.get(cls) or _field_names(cls)
    return {name: getattr(obj, name) for name in names}
