"""Argument checks for tool calls: each bad value gets an ``invalid_arguments`` error that
names the argument and the accepted values, never a crash deeper in."""

from __future__ import annotations

from typing import Any

from .errors import ToolError
from .schemas import MAX_FILTERS


def check_arguments(arguments: Any, tool: dict) -> dict:
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise ToolError("invalid_arguments", "arguments must be a JSON object")
    allowed = set(tool["inputSchema"]["properties"])
    unknown = sorted(set(arguments) - allowed)
    if unknown:
        raise ToolError("invalid_arguments", f"unknown argument(s) {', '.join(unknown)}; "
                                             f"{tool['name']} takes {', '.join(sorted(allowed)) or 'none'}")
    for name in tool["inputSchema"].get("required", []):
        if name not in arguments or arguments[name] is None:
            raise ToolError("invalid_arguments", f"missing required argument {name!r}")
    return arguments


def int_arg(args: dict, name: str, default: int | None, lo: int, hi: int | None = None) -> int | None:
    value = args.get(name, default)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ToolError("invalid_arguments", f"{name} must be an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        rng = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
        raise ToolError("invalid_arguments", f"{name} must be {rng}, got {value}")
    return value


def str_arg(args: dict, name: str, *, max_len: int = 4096) -> str:
    value = args.get(name)
    if not isinstance(value, str):
        raise ToolError("invalid_arguments", f"{name} must be a string, got {_short(value)}")
    if not value.strip():
        raise ToolError("invalid_arguments", f"{name} must not be empty")
    if len(value) > max_len:
        raise ToolError("invalid_arguments", f"{name} is too long ({len(value)} characters, at most {max_len})")
    if "\x00" in value:
        raise ToolError("invalid_arguments", f"{name} must not contain NUL characters")
    return value


def str_list_arg(args: dict, name: str) -> list[str]:
    value = args.get(name)
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ToolError("invalid_arguments", f"{name} must be a list of strings, got {_short(value)}")
    if len(value) > MAX_FILTERS:
        raise ToolError("invalid_arguments", f"{name}: at most {MAX_FILTERS} entries")
    return [v for v in value if v.strip()]


def bool_arg(args: dict, name: str, default: bool) -> bool:
    value = args.get(name, default)
    if not isinstance(value, bool):
        raise ToolError("invalid_arguments", f"{name} must be true or false, got {_short(value)}")
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
