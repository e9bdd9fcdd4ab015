"""Canonical JSON: the byte form that is hashed and signed. Keys sorted, no
whitespace, UTF-8, integers only; two writers always produce the same bytes, so a
digest names content, not formatting."""

import json
from typing import Any


def _reject_floats(value: Any) -> None:
    if isinstance(value, float):
        raise ValueError("canonical JSON does not allow floating-point numbers")
    if isinstance(value, dict):
        for item in value.values():
            _reject_floats(item)
    elif isinstance(value, list):
        for item in value:
            _reject_floats(item)


def canonical_bytes(value: Any) -> bytes:
    try:
        _reject_floats(value)
        return json.dumps(value, sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False).encode()
    except RecursionError:
        raise ValueError("nested too deeply to be an ff document") from None


def load_json(data: bytes | str, what: str) -> Any:
    """Parse JSON from outside (a registry, a file in the store); any failure becomes
    a ValueError naming `what`, deep nesting included (the parser recurses)."""
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{what} is not valid JSON ({exc})") from None
    except RecursionError:
        raise ValueError(f"{what} is nested too deeply to be an ff document") from None


def parse_json_object(data: bytes, what: str) -> dict[str, Any]:
    """Parse JSON that must be an object; any failure becomes a ValueError naming `what`."""
    value = load_json(data, what)
    if not isinstance(value, dict):
        raise ValueError(f"{what} is not a JSON object")
    return value
