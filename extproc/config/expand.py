"""`${VAR}` / `${VAR:-default}` expansion of string values from the environment."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_REFERENCE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class UnsetVariable(Exception):
    def __init__(self, path: str, variable: str) -> None:
        super().__init__(f"{path}: environment variable {variable} is not set (use ${{{variable}:-default}})")
        self.path = path
        self.variable = variable


def expand(node: Any, env: Mapping[str, str], path: str = "") -> tuple[Any, list[UnsetVariable]]:
    """Expand every string in a YAML tree; returns the new tree and the unset variables it referenced."""
    problems: list[UnsetVariable] = []

    def walk(value: Any, at: str) -> Any:
        if isinstance(value, str):
            return _expand_string(value, env, at, problems)
        if isinstance(value, dict):
            return {k: walk(v, f"{at}.{k}" if at else str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, f"{at}[{i}]") for i, v in enumerate(value)]
        return value

    return walk(node, path), problems


def _expand_string(text: str, env: Mapping[str, str], path: str, problems: list[UnsetVariable]) -> str:
    if "$" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        problems.append(UnsetVariable(path, name))
        return ""

    return _REFERENCE.sub(replace, text)
