"""Typed mappings into frozen dataclasses: every value checked against its field's type hint,
every problem named by its dotted key, and YAML read as YAML 1.2. The machinery behind `config.py`,
with no settings of its own."""

from __future__ import annotations

import collections.abc
import dataclasses
import math
import re
import types
import typing
from collections.abc import Mapping
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import yaml


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


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2's core schema for booleans, integers and floats.

    YAML 1.1 reads `include_ratio: yes` as true, a tenant named `on` as the key True, `top: 1_000`
    as 1000, `1:30` as 90 (base 60) and `010` as 8 (octal). YAML 1.2 keeps the first four strings,
    which then fail validation naming their key, and reads `010` as 10.
    """


_YAML12_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_YAML12_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
_REPLACED = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}
_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _REPLACED]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
# Integers first: every integer also matches the float pattern.
_Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:int", _YAML12_INT, list("-+0123456789"))
_Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:float", _YAML12_FLOAT, list("-+.0123456789"))


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    """A YAML 1.2 integer: decimal (a leading zero is no octal), `0o` octal or `0x` hex."""
    text = str(loader.construct_scalar(node))
    if not _YAML12_INT.match(text):
        # Only an explicit `!!int` tag gets here with anything else.
        raise yaml.constructor.ConstructorError(None, None, f"{text!r} is not a YAML 1.2 integer", node.start_mark)
    if text.startswith(("0o", "0x")):
        return int(text[2:], 8 if text[1] == "o" else 16)
    return int(text, 10)


_Yaml12Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def load_mapping(path: str | Path | None) -> dict[str, Any]:
    """Read a YAML config file into a plain mapping (not yet validated); None gives {}."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Yaml12Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected a mapping of keys at the top, got {type(data).__name__}")
    return dict(data)
