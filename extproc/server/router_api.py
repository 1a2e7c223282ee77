"""The operator's routes on the admin app: explain a decision, live stats, and the dashboard that shows them.

Envoy routes `/v1/router/*` and `/dashboard*` from its listener here, so they share the router's port (and the
dashboard's playground can call `/v1/chat/completions` on the same origin).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from extproc.headers import STRATEGY_HEADER
from extproc.observability.explain import explain
from extproc.observability.stats import router_stats
from extproc.providers.errors import openai_error
from extproc.routing.request import BadRequest
from extproc.server.runtime import Runtime

DASHBOARD = Path(__file__).parent / "dashboard"


def bad_request_response(error: BadRequest) -> web.Response:
    """A client error answered by the admin app, in OpenAI's error shape."""
    body = openai_error(error.status, error.message, code=error.code, param=error.param)
    return web.Response(body=body, status=error.status, content_type="application/json")


def add_router_routes(
    app: web.Application, runtime: Callable[[], Runtime], health: Callable[[Runtime], dict[str, Any]]
) -> None:
    async def explain_decision(request: web.Request) -> web.Response:
        strategy = request.headers.get(STRATEGY_HEADER) or request.query.get("strategy")
        try:
            result = explain(runtime().router, await request.read(), strategy)
        except BadRequest as error:
            return bad_request_response(error)
        return web.Response(body=orjson.dumps(result), content_type="application/json")

    async def stats(_: web.Request) -> web.Response:
        current = runtime()
        body = orjson.dumps(router_stats(current, health(current)))
        return web.Response(body=body, content_type="application/json", headers={"cache-control": "no-store"})

    async def dashboard(_: web.Request) -> web.FileResponse:
        return web.FileResponse(DASHBOARD / "index.html", headers={"cache-control": "no-store"})

    app.router.add_post("/v1/router/explain", explain_decision)
    app.router.add_get("/v1/router/stats", stats)
    app.router.add_get("/dashboard", dashboard)
    app.router.add_get("/dashboard/", dashboard)
    app.router.add_static("/dashboard/assets", DASHBOARD)
