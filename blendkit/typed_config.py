"""Typed dataclass configs: strict loading from JSON-like dicts and ``key=value`` overrides.

One implementation for every config of the project (``ShardConfig``, ``TrainConfig`` and the
configs they nest): unknown keys and values of the wrong type raise ``ConfigError`` with a
one-line message naming the key, so a typo never silently falls back to a default. Values are
converted only where that loses nothing (int -> float, list -> tuple, str -> Path).
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal


class ConfigError(ValueError):
    """A config key, value or combination that cannot be used; the message names the key."""


def to_dict(cfg: Any) -> dict[str, Any]:
    """Dataclass tree -> plain JSON-able dict (tuples become lists, paths strings)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


def _type_name(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):  # int | Literal["auto"]: "int or 'auto'"
        return " or ".join(_type_name(a) for a in args if a is not type(None))
    if origin is Literal:
        return " or ".join(repr(a) for a in args)
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _hints(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check a JSON value against a declared type and convert it (int -> float, list -> tuple)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping for section {_type_name(tp)}")
        return from_dict(tp, value, prefix=f"{key}.")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}: expected one of {list(args)}, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        item = args[0] if args else Any
        items = [_coerce(v, item, key) for v in value]
        return tuple(items) if origin is tuple else items
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        if not math.isfinite(value):  # NaN passes every comparison check, inf most
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    if tp is Path:
        if not isinstance(value, str | Path):
            raise ConfigError(f"{key}: expected a path, got {value!r}")
        return Path(value)
    raise ConfigError(f"{key}: unsupported field type {_type_name(tp)}")


def from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a (possibly partial) dict; missing keys take the defaults."""
    if not isinstance(data, dict):
        where = prefix.rstrip(".") or cls.__name__
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = _hints(cls)
    for name in data:
        if name not in hints:
            raise ConfigError(f"unknown config key '{prefix}{name}' (known: {', '.join(hints)})")
    values = {k: _coerce(v, hints[k], f"{prefix}{k}") for k, v in data.items()}
    try:
        return cls(**values)
    except ConfigError as e:  # a section's own checks (__post_init__): "field: reason"
        raise ConfigError(f"{prefix}{e}") from None
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{prefix.rstrip('.') or cls.__name__}: {e}") from None


def read_json_object(path: str | Path) -> dict[str, Any]:
    """The JSON object in the file ``path``; ``ConfigError`` naming the file if it cannot be read,
    is not JSON (binary garbage included) or holds something else (a list, a number)."""
    try:
        data = json.loads(Path(path).read_bytes())
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config ({e.strerror or e})") from None
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError, [[[[...
        raise ConfigError(f"{path}: not a JSON config ({_first_line(e)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a JSON object, got {type(data).__name__}")
    return data


def _first_line(e: Exception) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0][:200]


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _parse(text: str, tp: Any, key: str) -> Any:
    """Parse an override string to the JSON value ``_coerce`` expects for type ``tp``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if text.lower() in ("none", "null") and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(_parse(text, arg, key), arg, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: cannot parse {text!r} as {_type_name(tp)}")
    if origin is Literal:
        for choice in args:
            if str(choice) == text or (isinstance(choice, bool) and text.lower() == str(choice)):
                return choice
        raise ConfigError(f"{key}: expected one of {list(args)}, got {text!r}")
    if origin in (list, tuple):
        if text.startswith("["):
            try:
                items = json.loads(text)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{key}: cannot parse {text!r} as a JSON list ({e})") from None
            if not isinstance(items, list):
                raise ConfigError(f"{key}: expected a list, got {text!r}")
            return items
        item = args[0] if args else str
        return [_parse(part.strip(), item, key) for part in text.split(",") if part.strip()]
    if tp is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ConfigError(f"{key}: expected true or false, got {text!r}")
    if tp is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{key}: expected an integer, got {text!r}") from None
    if tp is float:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{key}: expected a number, got {text!r}") from None
    if dataclasses.is_dataclass(tp):
        raise ConfigError(f"{key} is a section; set its fields, e.g. {key}.<field>=...")
    return text


def apply_overrides(
    cfg: Any, overrides: typing.Iterable[str], derived: typing.Mapping[str, str] | None = None
) -> Any:
    """A copy of dataclass ``cfg`` with ``key=value`` overrides (dotted keys) applied.

    ``derived`` maps keys that may not be set directly to the message saying what to set instead.
    """
    cls = type(cfg)
    tree = to_dict(cfg)
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        if derived and key in derived:
            raise ConfigError(f"{key} {derived[key]}")
        node_cls, node, parts = cls, tree, key.split(".")
        for depth, part in enumerate(parts):
            hints = _hints(node_cls)
            if part not in hints:
                raise ConfigError(f"unknown config key {key!r} (known: {', '.join(hints)})")
            tp = hints[part]
            if depth < len(parts) - 1:
                if not dataclasses.is_dataclass(tp):
                    raise ConfigError(f"unknown config key {key!r}")
                node_cls, node = tp, node[part]
        node[parts[-1]] = _coerce(_parse(text, tp, key), tp, key)
    return from_dict(cls, _plain(tree))


def _plain(tree: Any) -> Any:
    """Values coerced in place may be tuples or Paths; make the tree JSON-like again."""
    return json.loads(json.dumps(tree, default=str))


# ----------------------------------------------------------------------------- checks
# The one validation style of every config dataclass: ``__post_init__`` calls these, and each
# raises ``ConfigError`` whose message starts with the field's name (``from_dict`` adds the
# section's dotted prefix).


def require(ok: bool, key: str, message: str) -> None:
    """Raise ``ConfigError("key: message")`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{key}: {message}")


def positive(cfg: Any, *names: str) -> None:
    """Each named field is > 0."""
    for name in names:
        value = getattr(cfg, name)
        require(value > 0, name, f"must be positive, got {value}")


def at_least(cfg: Any, minimum: float, *names: str) -> None:
    """Each named field is >= ``minimum``."""
    for name in names:
        value = getattr(cfg, name)
        require(value >= minimum, name, f"must be at least {minimum}, got {value}")


def one_of(cfg: Any, name: str, choices: typing.Iterable[Any]) -> None:
    """The named field is one of ``choices``."""
    choices = tuple(choices)
    value = getattr(cfg, name)
    require(value in choices, name, f"expected one of {list(choices)}, got {value!r}")
