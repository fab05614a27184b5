"""YAML configs with dotted ``--set`` overrides, validated into typed dataclasses.

A config schema is a (nested) dataclass. :func:`load_config` reads a YAML file with
``yaml.safe_load``, applies ``key.path=value`` overrides (values parsed as YAML), and builds
the dataclass, checking every key and value once, here at the boundary. Errors name the key
path, the bad value and what was expected, and suggest the closest valid key.

Field constraints go in the metadata through :func:`param`::

    @dataclass
    class Optim:
        lr: float = param(1e-3, gt=0)
        name: Literal["sgd", "adam"] = "adam"
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable
from pathlib import Path, PurePath
from typing import Any, Literal, TypeVar, Union

import yaml

from mdcli.errors import InputError

T = TypeVar("T")
CONFIG_SUFFIXES = (".yml", ".yaml")


def param(default: Any, *, ge=None, gt=None, le=None, lt=None, help: str = "") -> Any:
    """A dataclass field with a default, numeric bounds and a help text."""
    meta = {"ge": ge, "gt": gt, "le": le, "lt": lt, "help": help}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: _copy(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _copy(value: Any) -> Any:
    return yaml.safe_load(yaml.safe_dump(value))


def config_roots() -> list[Path]:
    """Folders searched for configs named without a path: packaged, then the source tree."""
    here = Path(__file__).resolve().parent
    return [here / "configs", here.parents[1] / "configs"]


def resolve_config_path(name: str | Path) -> Path:
    """A path as given if it exists, else a packaged config (``distill/tc_tiny``)."""
    path = Path(name)
    if path.is_file():
        return path
    if path.suffix not in CONFIG_SUFFIXES and not path.is_absolute():
        for root in config_roots():
            for suffix in ("", *CONFIG_SUFFIXES):
                candidate = root / f"{name}{suffix}"
                if candidate.is_file():
                    return candidate
    if path.is_dir():
        raise InputError(f"config {name}: is a directory, expected a YAML file")
    raise InputError(
        f"config file not found: {name} (expected a YAML file or a packaged config name "
        f"such as 'train/mlp_digits_adam')"
    )


def read_yaml(path: Path) -> dict:
    """Read one YAML mapping with ``safe_load``; malformed YAML is an :class:`InputError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read config {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise InputError(f"malformed YAML in {path}{line}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"config {path}: expected a mapping of keys at the top level, "
                         f"got {type(data).__name__}")
    return data


def apply_override(data: dict, override: str) -> None:
    """Apply one ``key.path=value`` override in place; the value is parsed as YAML."""
    key, sep, raw = override.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise InputError(f"--set {override!r}: expected KEY.PATH=VALUE, e.g. optim.lr=0.01")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    node = data
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            prefix = ".".join(parts[: i + 1])
            raise InputError(f"--set {override!r}: {prefix} is a value, not a section")
        node = child
    node[parts[-1]] = value


def load_config(schema: type[T], source: str | Path | None = None,
                overrides: Iterable[str] = ()) -> T:
    """Build ``schema`` from an optional YAML file plus ``key.path=value`` overrides."""
    data = read_yaml(resolve_config_path(source)) if source else {}
    for override in overrides:
        apply_override(data, override)
    return from_dict(schema, data)


def from_dict(schema: type[T], data: Any, path: str = "") -> T:
    """Validate ``data`` against the dataclass ``schema``; errors name the key path."""
    if not isinstance(data, dict):
        raise InputError(f"config key '{path}': got {data!r}, expected a section (mapping)")
    fields = {f.name: f for f in dataclasses.fields(schema)}
    for key in data:
        if key not in fields:
            raise InputError(_unknown_key_message(_join(path, str(key)), str(key), fields))
    hints = typing.get_type_hints(schema)
    values = {}
    for name, field in fields.items():
        if name in data:
            key = _join(path, name)
            values[name] = _check_bounds(_coerce(hints[name], data[name], key), field, key)
    return schema(**values)


def to_dict(config: Any) -> dict:
    """The plain-dict form of a config dataclass (what ``config.yaml`` holds; paths as text)."""
    return dataclasses.asdict(config, dict_factory=_plain_dict)


def _plain_dict(items: list[tuple[str, Any]]) -> dict:
    return {key: str(value) if isinstance(value, PurePath) else value for key, value in items}


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _unknown_key_message(full_key: str, key: str, fields: dict) -> str:
    close = difflib.get_close_matches(key, list(fields), n=1, cutoff=0.5)
    hint = f"; did you mean '{_join(full_key.rpartition('.')[0], close[0])}'?" if close else ""
    valid = ", ".join(sorted(fields))
    return f"unknown config key '{full_key}'{hint} (valid keys here: {valid})"


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(v) for v in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        return f"a list (items: {_describe(item)})"
    if origin is dict:
        return "a mapping"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "a section (mapping)"
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        options = typing.get_args(tp)
        errors = []
        for option in options:
            try:
                return _coerce(option, value, key)
            except InputError as exc:
                errors.append(exc)
        non_null = [i for i, o in enumerate(options) if o is not type(None)]
        if len(non_null) == 1 and value is not None:  # Optional[X]: X's own, precise message
            raise errors[non_null[0]]
        raise _type_error(key, value, tp)
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
        raise _type_error(key, value, tp)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise _type_error(key, value, tp)
        (item,) = typing.get_args(tp) or (Any,)
        return [_coerce(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise _type_error(key, value, tp)
        return dict(value)
    if tp is type(None):
        if value is None:
            return None
        raise _type_error(key, value, tp)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _type_error(key, value, tp)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _type_error(key, value, tp)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise _type_error(key, value, tp)
    if tp is str:
        if isinstance(value, str):
            return value
        raise _type_error(key, value, tp)
    raise TypeError(f"unsupported config type {tp!r} for {key}")


def _type_error(key: str, value: Any, tp: Any) -> InputError:
    return InputError(f"config key '{key}': got {value!r}, expected {_describe(tp)}")


def _check_bounds(value: Any, field: dataclasses.Field, key: str) -> Any:
    meta = field.metadata
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, (int, float)) or isinstance(item, bool):
            continue
        for bound, ok, words in (
            ("ge", lambda v, b: v >= b, ">="), ("gt", lambda v, b: v > b, ">"),
            ("le", lambda v, b: v <= b, "<="), ("lt", lambda v, b: v < b, "<"),
        ):
            limit = meta.get(bound)
            if limit is not None and not ok(item, limit):
                raise InputError(
                    f"config key '{key}': got {item!r}, expected a value {words} {limit}")
    return value
