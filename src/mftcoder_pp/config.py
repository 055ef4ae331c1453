"""Strict YAML -> dataclass loading: unknown keys, wrong types and missing fields are errors that
name the file and the key path (e.g. `configs/prepare.yaml: sources[2].format: ...`)."""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")
_YAML11_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


class ConfigError(ValueError):
    """A configuration problem; the message starts with the file and key path."""


def load_config(path: str | Path, cls: type[T], overrides: dict[str, Any] | None = None) -> T:
    """Read a YAML file into dataclass `cls`, strictly."""
    data = read_yaml(path)
    if data is None:
        data = {}
    if isinstance(data, dict):  # anything else is reported by from_dict, naming the file
        data.update(overrides or {})
    return from_dict(cls, data, where=str(path))


def read_yaml(path: str | Path) -> Any:
    """The parsed YAML of a config file; unreadable files and invalid YAML are errors naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark (Windows editors) is not content
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a UTF-8 text file (byte {exc.start}: {exc.reason})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or exc
        raise ConfigError(f"{path}{where}: invalid YAML ({problem})") from None


def check_exists(path: str | Path, label: str, hint: str = "") -> None:
    """An input must exist before anything heavy runs; `label` names the config key or flag
    (e.g. "configs/t.yaml: data.prepared[0]")."""
    if not Path(path).exists():
        raise ConfigError(f"{label}: {path}: no such file or directory{hint}")


def check_output_dir(path: str | Path, label: str) -> None:
    """An output directory must be creatable: neither it nor its nearest existing parent is a file."""
    path = Path(path)
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                inside = "" if p == path else f" (a parent of {path})"
                raise ConfigError(f"{label}: {p}{inside} exists and is not a directory")
            return


def from_dict(cls: type[T], data: Any, where: str = "config", path: str = "") -> T:
    """Build dataclass `cls` from plain data; every problem names `where` and the key path."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: {path or 'top level'}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(map(str, set(data) - set(fields)))  # YAML keys may be numbers too
    if unknown:
        close = difflib.get_close_matches(unknown[0], fields, n=1)
        hint = f" (known: {', '.join(sorted(fields))})" + (f"; did you mean {close[0]!r}?" if close else "")
        raise ConfigError(f"{where}: {_join(path, unknown[0])}: unknown key{hint}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, f in fields.items():
        key = _join(path, name)
        if name in data:
            kwargs[name] = _convert(hints[name], data[name], where, key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{where}: {key}: missing required key")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:  # a dataclass's own validation in __post_init__
        raise ConfigError(f"{where}: {path or 'top level'}: {exc}") from None


def flatten(record: dict, sep: str = ".", prefix: str = ""):
    """(path, value) for every leaf of a nested dict, the path's keys joined by `sep`."""
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from flatten(value, sep, name + sep)
        else:
            yield name, value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _convert(tp: Any, value: Any, where: str, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, where, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: {key}: {value!r} matches none of {tp}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {key}: must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where, key)
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise ConfigError(f"{where}: {key}: expected a list, got {type(value).__name__}")
        item = args[0] if args else Any
        items = [_convert(item, v, where, f"{key}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: {key}: expected a mapping, got {type(value).__name__}")
        kt, vt = args or (Any, Any)
        return {_convert(kt, k, where, f"{key}.{k}"): _convert(vt, v, where, f"{key}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, str) and _YAML11_FLOAT.fullmatch(value.strip()):
            return float(value)  # PyYAML (YAML 1.1) reads `1e-5` as a string; YAML 1.2 and users mean a number
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: {key}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: {key}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: {key}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: {key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: {key}: unsupported config type {tp}")
