"""Config base: frozen dataclasses that round-trip through plain dicts (and so TOML/JSON).

`__post_init__` only validates; no I/O, no environment, no device queries (DESIGN rule 1).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

from optbench.errors import ConfigError

C = TypeVar("C", bound="Config")


@dataclasses.dataclass(frozen=True)
class Config:
    """Base of every optbench config. Subclasses are frozen dataclasses with simple fields."""

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Config):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = [v.to_dict() if isinstance(v, Config) else v for v in value]
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(
                f"{cls.__name__}: unknown field(s) {unknown}; allowed fields are {sorted(names)}")
        hints = typing.get_type_hints(cls)
        kwargs = {k: _coerce(hints.get(k), v) for k, v in data.items()}
        return cls(**kwargs)


def read_toml(path, what: str) -> dict:
    """A TOML file as a dict, or an error naming the file (`what`: "recipe", "sweep file")."""
    import tomllib
    from pathlib import Path

    from optbench.errors import MissingInputError

    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"{what} not found: {path}")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None


def entry_point(target: str, what: str, form: str = "<package.module>:<function>"):
    """The callable named `package.module:function` (a recipe's python: models and datasets),
    or a ConfigError saying how to name it and where Python looked."""
    import importlib

    module_name, _, function = target.rpartition(":")
    if not module_name or not function:
        raise ConfigError(f"{what} {target!r}: name it as {form}")
    try:
        return getattr(importlib.import_module(module_name), function)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{what} {target!r}: {exc}; the module must be importable (installed, "
                          "or on PYTHONPATH) and define the function") from None


def check_positive(owner: str, **values: float) -> None:
    """Raise ConfigError naming the first field that is not > 0."""
    for name, value in values.items():
        if not value > 0:
            raise ConfigError(f"{owner}.{name} must be > 0, got {value!r}")


def check_choice(owner: str, name: str, value: Any, allowed: typing.Iterable[Any]) -> None:
    allowed = tuple(allowed)
    if value not in allowed:
        raise ConfigError(f"{owner}.{name} must be one of {list(allowed)}, got {value!r}")


def parse_ints(text: str, flag: str) -> tuple[int, ...]:
    """'1,8' -> (1, 8), for command-line flags; a ConfigError naming the flag otherwise."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"{flag} takes comma-separated integers, e.g. 1,8; got {text!r}"
                          ) from None
    if not values:
        raise ConfigError(f"{flag} is empty; give comma-separated integers, e.g. 1,8")
    return values


def _coerce(hint: Any, value: Any) -> Any:
    if isinstance(hint, type) and issubclass(hint, Config) and isinstance(value, dict):
        return hint.from_dict(value)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType) and isinstance(value, dict):
        for arg in typing.get_args(hint):  # e.g. TrainConfig | None
            if isinstance(arg, type) and issubclass(arg, Config):
                return arg.from_dict(value)
    if isinstance(value, list) and (origin is tuple or hint is tuple):
        item = (typing.get_args(hint) or (None,))[0]  # e.g. tuple[ABRoute, ...]
        return tuple(_coerce(item, v) for v in value)
    return value


def to_toml(data: dict[str, Any]) -> str:
    """A flat TOML table of `data` (nested dicts become inline tables). Enough for configs."""
    return "".join(f"{key} = {_toml_value(value)}\n" for key, value in data.items()
                   if value is not None)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()
                          if v is not None)
        return "{ " + inner + " }"
    raise ConfigError(f"cannot write {type(value).__name__} to TOML")


def _toml_key(key: str) -> str:
    """A bare key where TOML allows one, else quoted ("layer4.0.conv1" is one key, not three)."""
    import re

    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_value(key)
