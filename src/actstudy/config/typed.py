"""Plain config data to typed dataclasses: every wrong value is a `ConfigError` of one line.

A dataclass with an `arguments` field is a `_target_` node: its other keys are the target's own
arguments, typed by the target's signature; `TARGET_GETS` names what the harness passes itself.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import types
import typing
from typing import Any

from actstudy.errors import ConfigError

ARGUMENTS = "arguments"  # the field that holds a `_target_` node's own arguments (its other keys)


def build(cls: type[Any], node: Any, prefix: str) -> Any:
    """Return dataclass `cls` built from the mapping `node` (keys under `prefix`), converted and checked."""
    if not isinstance(node, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {node!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)} - {ARGUMENTS}
    extra = {k: v for k, v in node.items() if k not in names}
    if extra and ARGUMENTS not in hints:
        unknown = sorted(extra)[0]
        raise ConfigError(
            f"unknown key '{prefix}{unknown}'; known keys under '{prefix.rstrip('.') or 'config'}': "
            + ", ".join(sorted(names))
        )
    values = {}
    for f in dataclasses.fields(cls):
        key = prefix + f.name
        if f.name == ARGUMENTS:
            given = (cls.TARGET_GETS, getattr(cls, "TARGET_MAY_GET", ()))
            values[f.name] = target_arguments(node.get("_target_"), extra, *given, prefix)
        elif f.name in node:
            values[f.name] = convert(hints[f.name], node[f.name], key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing key '{key}'")
    obj = cls(**values)
    if hasattr(obj, "check"):
        obj.check()
    return obj


def target_arguments(
    target: Any, arguments: dict[str, Any], given: tuple[str, ...], may_get: tuple[str, ...], prefix: str
) -> dict:
    """Return `arguments` typed by `target`'s signature; raise ConfigError for an unknown or ill-typed one,
    or a required one missing.

    `given` are the parameters the harness passes itself: the target must take them, the file must not;
    `may_get` are passed only if the target takes them.
    """
    module, _, name = str(target).rpartition(".")
    try:  # imports the target's module (torch for most), so it comes after the cheap checks
        built = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(
            f"{prefix}_target_={target}: cannot be imported ({exc}); name a class or function, "
            "e.g. torch.optim.SGD"
        ) from None
    try:
        parameters = inspect.signature(built).parameters
    except (TypeError, ValueError):  # a builtin such as torch.sigmoid: nothing to check its arguments by
        raise ConfigError(
            f"{prefix}_target_={target}: has no signature its arguments can be checked against; name a "
            "Python class or function, e.g. torch.nn.Sigmoid"
        ) from None
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    for name in given:
        if name not in parameters and not takes_any:
            raise ConfigError(f"{prefix}_target_={target}: does not take '{name}', which actstudy passes")
    try:
        hints = typing.get_type_hints(built.__init__ if inspect.isclass(built) else built)
    except Exception:  # an annotation that does not resolve: leave the values untyped
        hints = {}
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    given = (*given, *may_get)
    own = [n for n, p in parameters.items() if n not in given and p.kind not in variadic]
    for name, p in parameters.items():
        needed = p.default is inspect.Parameter.empty and p.kind not in variadic
        if needed and name not in given and name not in arguments:
            raise ConfigError(f"{prefix}{name}: missing; {target} needs it (e.g. {prefix}{name}=...)")
    typed = {}
    for key, value in arguments.items():
        if key not in own and not takes_any:
            raise ConfigError(f"unknown key '{prefix}{key}'; {target} takes: {', '.join(own)}")
        typed[key] = convert(hints.get(key, Any), value, prefix + key)
    return typed


def convert(tp: Any, value: Any, key: str) -> Any:
    """Return `value` converted to the type `tp`; raise ConfigError naming `key` if it cannot be."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            if len(args) < len(typing.get_args(tp)):
                return None
            raise ConfigError(f"{key}: must not be null")
        if set(args) == {int, float}:  # Lightning reads an int limit as a count, a float as a fraction
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return value
            raise ConfigError(f"{key}={value!r}: must be a number")
        return convert(args[0], value, key)
    if dataclasses.is_dataclass(tp):  # a type hint names the dataclass itself, never an instance of it
        return build(typing.cast(type, tp), value, key + ".")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}={value!r}: must be true or false")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}={value!r}: must be an integer")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key}={value!r}: must be a number")
    if tp is str:
        if isinstance(value, bool):  # `resume=true` arrives as a YAML boolean
            return str(value).lower()
        if isinstance(value, (str, int, float)):
            return str(value)
        raise ConfigError(f"{key}={value!r}: must be a string")
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(typing.get_args(tp)):
            raise ConfigError(f"{key}={value!r}: must be a list of {len(typing.get_args(tp))} numbers")
        return tuple(convert(a, v, key) for a, v in zip(typing.get_args(tp), value, strict=True))
    if origin is list:
        if not isinstance(value, (list, tuple)):
            example = f"[{value}]" if isinstance(value, str) else "[a,b]"
            raise ConfigError(f"{key}={value!r}: must be a list, e.g. {key}={example}")
        return [convert(typing.get_args(tp)[0], v, key) for v in value]
    if origin is dict:
        if isinstance(value, dict):
            return value
        raise ConfigError(f"{key}={value!r}: must be a mapping")
    return value


def at_least(key: str, value: float, minimum: float) -> None:
    """Raise ConfigError unless `value` >= `minimum`."""
    if value < minimum:
        raise ConfigError(f"{key}={value}: must be >= {minimum}")


def choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    """Raise ConfigError unless `value` is one of `allowed`."""
    if value not in allowed:
        raise ConfigError(f"{key}={value!r}: must be one of {', '.join(allowed)}")
