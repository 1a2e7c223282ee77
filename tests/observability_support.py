"""Helpers of the observability tests: a webhook receiver and the stack they watch."""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from aiohttp import web

from extproc.local.llama_server import free_port
from tests.stack_runner import local_cluster, stack_document
from tests.standins.base import Handler, Reply, StandIn, json_reply

WEBHOOK_TOKEN = "hook-token-5e2"
OPENAI_KEY = "sk-observability-openai"
T = TypeVar("T")


class WebhookStandIn(StandIn):
    """Receives decision batches (a JSON array per POST); `delay` makes it slow; `fail_next` makes it fail."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__(api_key=WEBHOOK_TOKEN)
        self.delay = delay
        self.decisions: list[dict[str, Any]] = []  # delivered: answered 2xx (a failed batch comes back later)

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [("POST", "/decisions", self._receive)]

    def error(self, status: int, message: str) -> Reply:
        return json_reply(status, {"error": message})

    def authenticate(self, request: web.Request) -> Reply | None:
        ok = request.headers.get("authorization") == f"Bearer {WEBHOOK_TOKEN}"
        return None if ok else self.error(401, "bad token")

    async def _receive(self, request: web.Request, body: Any) -> Reply:
        await asyncio.sleep(self.delay)
        self.decisions.extend(body)
        return json_reply(200, {"received": len(body)})


def observed_stack_document(openai_origin: str, observability: dict[str, Any], **router: Any) -> dict[str, Any]:
    """A llama.cpp cluster, a dead cluster (always skipped), two OpenAI models on one stand-in.

    Connect timeouts of 1 s keep the decision log's wait for a retry (1 s + connect timeout) short."""
    openai = {"type": "openai", "apiKey": OPENAI_KEY, "baseUrl": f"{openai_origin}/v1", "connectTimeout": "1s"}
    return {
        **stack_document(
            clusters=[
                local_cluster("local-aws", 0.0928, connectTimeout="1s"),
                {
                    "name": "dead-gcp",
                    "endpoint": f"http://127.0.0.1:{free_port()}",
                    "costPerHour": 0.05,
                    "model": "tiny-llama",
                    "contextWindow": 2048,
                    "connectTimeout": "1s",
                },
            ],
            providers=[
                {"name": "openai", "defaultModel": "gpt-4o-mini", **openai},
                {"name": "openai-4o", "defaultModel": "gpt-4o", **openai},
            ],
            **router,
        ),
        "observability": observability,
    }
