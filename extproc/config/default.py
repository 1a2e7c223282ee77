"""The embedded default config: local clusters always, external providers only where their key is set."""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import resources

import yaml

from extproc.config.loader import parse_config
from extproc.config.model import Config


def default_document() -> dict:
    return yaml.safe_load(resources.files("extproc.config").joinpath("default.yaml").read_text())


def default_config(env: Mapping[str, str] | None = None) -> Config:
    env = os.environ if env is None else env
    document = default_document()
    document["externalProviders"] = [p for p in document["externalProviders"] if _key_is_set(p["apiKey"], env)]
    return parse_config(document, env)


def _key_is_set(reference: str, env: Mapping[str, str]) -> bool:
    """`${NAME:-}` -> whether NAME is set and non-empty."""
    name = reference.removeprefix("${").split(":")[0].rstrip("}")
    return bool(env.get(name))
