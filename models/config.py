"""Typed configs as nested dataclasses: build from dicts/YAML, apply dotted CLI overrides, resolve back to dicts.

Shared by every model family so that a preset is data (configs/**/*.yaml), an unknown key gets a
"did you mean" error, and the fully resolved config can be written next to every checkpoint.
"""
from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from vla import VLAError, did_you_mean

T = TypeVar("T")


def _field_types(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _strip_optional(tp):
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def from_dict(cls: type[T], data: dict | None, where: str = "") -> T:
    """Build dataclass `cls` from a (possibly partial) nested dict; unknown keys raise VLAError."""
    data = dict(data or {})
    types_ = _field_types(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in types_:
            raise VLAError(f"unknown config key {where + key!r}; " + did_you_mean(key, sorted(types_)))
        tp = _strip_optional(types_[key])
        if dataclasses.is_dataclass(tp) and isinstance(value, dict):
            value = from_dict(tp, value, where + key + ".")
        elif tp in (int, float, bool) and value is not None:
            value = _scalar(tp, value, where + key)
        elif typing.get_origin(tp) is tuple and isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)


def _scalar(tp: type, value, key: str):
    """`value` as a `tp` (int, float or bool), or a one-line error naming the key.

    YAML reads `2e-4` (no dot) as a string, so numbers given as text are converted when they are exact.
    """
    if tp is bool:
        if isinstance(value, bool) or value in (0, 1):
            return bool(value)
        raise VLAError(f"config key {key!r} must be true or false (got {value!r}).")
    number = value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
        raise VLAError(f"config key {key!r} must be a number (got {value!r}).")
    if tp is int:
        if number != int(number):
            raise VLAError(f"config key {key!r} must be a whole number (got {value!r}).")
        return int(number)
    return float(number)


def to_dict(cfg) -> dict:
    """The resolved config as plain JSON-able data."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def _parse_value(text: str):
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(data: dict, overrides: list[str], cls=None) -> dict:
    """Apply `a.b.c=value` overrides (values parsed as YAML) to a nested dict, checking keys against `cls`."""
    data = json.loads(json.dumps(data))
    for item in overrides:
        if "=" not in item:
            raise VLAError(f"override {item!r} must look like key.sub=value (e.g. model.llm.hidden_size=128).")
        dotted, raw = item.split("=", 1)
        keys = dotted.strip().split(".")
        node, node_cls = data, cls
        for i, key in enumerate(keys):
            if node_cls is not None:
                types_ = _field_types(node_cls)
                if key not in types_:
                    where = ".".join(keys[:i + 1])
                    raise VLAError(f"unknown config key {where!r}; " + did_you_mean(key, sorted(types_)))
                node_cls = _strip_optional(types_[key])
                node_cls = node_cls if dataclasses.is_dataclass(node_cls) else None
            if i == len(keys) - 1:
                node[key] = _parse_value(raw)
            else:
                if not isinstance(node.get(key), dict):
                    node[key] = {}
                node = node[key]
    return data


def load_yaml(path: str | Path, what: str = "config file") -> dict:
    """A YAML mapping from `path`; `what` names the file in the one-sentence errors."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise VLAError(f"{what} {str(path)!r} does not exist.")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise VLAError(f"{what} {str(path)!r} is not valid YAML ({str(exc).splitlines()[0]}).") from None
    if not isinstance(data, dict):
        raise VLAError(f"{what} {str(path)!r} must hold a mapping at the top level.")
    return data


def merge(base: dict, top: dict) -> dict:
    """Deep-merge `top` over `base` (dicts merge, everything else replaces)."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out
