"""Configs and requests for routing unit tests (no servers)."""

from __future__ import annotations

from typing import Any

import orjson

from extproc.clusters.status import StatusBoard
from extproc.config.loader import parse_config
from extproc.config.model import Config
from extproc.routing.request import ChatRequest, parse_chat_request
from extproc.routing.router import Router


def two_clusters_three_providers(**router: Any) -> Config:
    return parse_config(
        {
            "router": {"routingStrategy": "hybrid", **router},
            "clusters": [
                {"name": "cheap", "endpoint": "http://127.0.0.1:1", "costPerHour": 0.1, "tokensPerSecond": 100},
                {"name": "dear", "endpoint": "http://127.0.0.1:2", "costPerHour": 0.5, "tokensPerSecond": 100},
            ],
            "externalProviders": [
                {"name": "openai", "type": "openai", "apiKey": "k", "defaultModel": "gpt-4o-mini"},
                {"name": "claude", "type": "claude", "apiKey": "k", "defaultModel": "claude-sonnet-4-20250514"},
                {"name": "gemini", "type": "gemini", "apiKey": "k", "defaultModel": "gemini-2.0-flash"},
            ],
        },
        env={},
    )


def router_with_healthy_clusters(config: Config) -> Router:
    board = StatusBoard([c.name for c in config.clusters], [p.name for p in config.enabled_providers])
    for cluster in config.clusters:
        board[cluster.name].mark_polled(True)
    return Router(config, board)


def chat(content: str = "Hi", **extra: Any) -> ChatRequest:
    return parse_chat_request(
        orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}], **extra})
    )
