"""Typed mappings into frozen dataclasses: every value checked against its field's type hint,
every problem named by its dotted key. The machinery behind `config.py`, with no settings of its own."""

from __future__ import annotations

import collections.abc
import dataclasses
import math
import re
import types
import typing
from collections.abc import Mapping
from datetime import date, datetime, timezone
from typing import Any


class ConfigError(ValueError):
    """A configuration value is missing, unknown, or of the wrong type; the message names the key."""


def parse_instant(value: Any, key: str) -> datetime | None:
    """Parse an ISO date or date-time into an aware UTC datetime; a date alone is midnight UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        text = value.strip()
        try:
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
                parsed = datetime.fromisoformat(text + "T00:00:00")
            else:
                parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ConfigError(
                f"{key}: '{value}' is not an ISO date or date-time (e.g. 2026-01-31 or 2026-01-31T08:00:00Z)"
            ) from None
    else:
        raise ConfigError(f"{key}: expected an ISO date or date-time, got {type(value).__name__}")
    # Naive times are documented as UTC, so they are labelled, not shifted.
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def coerce(value: Any, hint: Any, key: str) -> Any:
    """Check `value` against the type hint `hint`, converting where YAML is looser than Python."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return coerce(value, inner[0], key)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return build(hint, value, key)
    if hint is datetime:
        return parse_instant(value, key)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected a whole number, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:
                number = math.inf
            # NaN passes every range check (each comparison is false) and inf is no threshold.
            if not math.isfinite(number):
                raise ConfigError(f"{key}: expected a finite number, got {value!r}")
            return number
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    if origin is tuple:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return tuple(coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
    if origin in (collections.abc.Mapping, dict) or hint is Mapping:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        value_hint = args[1] if args else str
        out = {}
        for k, v in value.items():
            if k is None or not str(k).strip():
                # A blank key (a tenant id, a Spark setting) names nothing; YAML's null would become "None".
                raise ConfigError(f"{key}: a key must not be empty, got {k!r}")
            if value_hint is str and isinstance(v, (bool, int, float)):
                # Spark settings are strings, but YAML users write `8` and `true`.
                v = str(v).lower() if isinstance(v, bool) else str(v)
            out[str(k)] = coerce(v, value_hint, f"{key}.{k}")
        return types.MappingProxyType(out)
    raise ConfigError(f"{key}: unsupported type {hint!r}")  # pragma: no cover - a programming error


def build(cls: type, data: Any, prefix: str = "") -> Any:
    """Build dataclass `cls` from a mapping, naming the dotted key of any problem."""
    where = prefix or "config"
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping of keys, got {data!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in known:
            dotted = f"{prefix}.{key}" if prefix else str(key)
            raise ConfigError(f"unknown config key '{dotted}' (known keys here: {', '.join(sorted(known))})")
    kwargs = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else key
        kwargs[key] = coerce(value, hints[key], dotted)
    return cls(**kwargs)
