"""Typed field access over a YAML mapping that records every problem with its key path.

Values may arrive as strings after `${VAR}` expansion, so numbers, booleans and durations are coerced
from strings too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_SIZE = re.compile(r"^\s*(\d+)\s*(|b|kb|kib|mb|mib|gb|gib)\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "kb": 1000, "kib": 1024, "mb": 10**6, "mib": 2**20, "gb": 10**9, "gib": 2**30}


class Problems(list[str]):
    """The validation errors of one config, each `key.path: message`."""

    def add(self, path: str, message: str) -> None:
        self.append(f"{path}: {message}")


class Reader:
    """Reads the fields of one mapping at `path`; unknown keys are reported when `finish()` is called."""

    def __init__(self, node: Any, path: str, problems: Problems) -> None:
        self.path = path
        self.problems = problems
        if node is None:
            node = {}
        if not isinstance(node, dict):
            problems.add(path or "<root>", "must be a mapping")
            node = {}
        self.node: dict[str, Any] = node
        self._seen: set[str] = set()

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def raw(self, key: str) -> Any:
        self._seen.add(key)
        return self.node.get(key)

    def has(self, key: str) -> bool:
        return self.node.get(key) is not None

    def string(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self.raw(key)
        if value is None or value == "":
            if required:
                self.problems.add(self.at(key), "is required")
            return default
        if isinstance(value, bool | dict | list):
            self.problems.add(self.at(key), "must be a string")
            return default
        return str(value)

    def choice(self, key: str, options: Iterable[str], default: str) -> str:
        options = tuple(options)
        value = self.string(key, default)
        if value not in options:
            self.problems.add(self.at(key), f"must be one of {', '.join(options)} (got {value!r})")
            return default
        return value

    def number(
        self,
        key: str,
        default: float | None = None,
        *,
        positive: bool = False,
        non_negative: bool = False,
        required: bool = False,
    ) -> float | None:
        value = self.raw(key)
        if value is None:
            if required:
                self.problems.add(self.at(key), "is required")
            return default
        number = _as_number(value)
        if number is None:
            self.problems.add(self.at(key), "must be a number")
            return default
        if positive and number <= 0:
            self.problems.add(self.at(key), "must be a positive number")
            return default
        if non_negative and number < 0:
            self.problems.add(self.at(key), "must not be negative")
            return default
        return number

    def integer(self, key: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
        value = self.raw(key)
        if value is None:
            return default
        number = _as_number(value)
        if number is None or number != int(number):
            self.problems.add(self.at(key), "must be a whole number")
            return default
        if number < minimum or (maximum is not None and number > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
            self.problems.add(self.at(key), f"must be {bound}")
            return default
        return int(number)

    def port(self, key: str, default: int) -> int:
        return self.integer(key, default, minimum=1, maximum=65535)

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in (
            "true",
            "yes",
            "on",
            "1",
            "false",
            "no",
            "off",
            "0",
        ):
            return value.strip().lower() in ("true", "yes", "on", "1")
        self.problems.add(self.at(key), "must be true or false")
        return default

    def duration(self, key: str, default: float) -> float:
        """Seconds, from `30s`, `500ms`, `5m`, `1h` or a bare number of seconds."""
        value = self.raw(key)
        if value is None:
            return default
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return float(value)
        match = _DURATION.match(str(value)) if isinstance(value, str) else None
        if not match:
            self.problems.add(self.at(key), "must be a duration like 500ms, 30s, 5m or 1h")
            return default
        return float(match.group(1)) * _DURATION_UNITS[match.group(2)]

    def size(self, key: str, default: int) -> int:
        """Bytes, from a number or `512KiB`, `8MiB`, `1GB`."""
        value = self.raw(key)
        if value is None:
            return default
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        match = _SIZE.match(str(value)) if isinstance(value, str) else None
        if not match or int(match.group(1)) <= 0:
            self.problems.add(self.at(key), "must be a size like 1048576, 512KiB or 8MiB")
            return default
        return int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.raw(key)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problems.add(self.at(key), "must be a list of strings")
            return ()
        return tuple(value)

    def items(self, key: str) -> list[tuple[str, Any]]:
        """The elements of a list field, each with its key path."""
        value = self.raw(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.problems.add(self.at(key), "must be a list")
            return []
        return [(f"{self.at(key)}[{i}]", item) for i, item in enumerate(value)]

    def section(self, key: str) -> Reader:
        return Reader(self.raw(key), self.at(key), self.problems)

    def finish(self) -> None:
        for key in self.node:
            if key not in self._seen:
                self.problems.add(self.at(str(key)), "unknown key")


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None
