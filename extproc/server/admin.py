"""The controller's admin HTTP server: /health (seed JSON shape), /metrics (Prometheus), /v1/models (and
/v1/models/{model}).

Envoy routes these paths from its listener here too, so clients see them on the router's own port.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from extproc.reliability.breaker import State
from extproc.routing.model_groups import listed_models, unknown_model
from extproc.routing.targets import Target
from extproc.server.router_api import add_router_routes, bad_request_response
from extproc.server.runtime import Runtime


def admin_app(runtime: Callable[[], Runtime], draining: Callable[[], bool] = lambda: False) -> web.Application:
    app = web.Application()

    async def livez(_: web.Request) -> web.Response:
        """Envoy's health check of this replica: 503 while it drains."""
        return web.Response(status=503 if draining() else 200, text="draining" if draining() else "ok")

    async def health(_: web.Request) -> web.Response:
        report = health_report(runtime())
        status = 503 if report["status"] == "unhealthy" else 200
        return web.Response(body=orjson.dumps(report), status=status, content_type="application/json")

    async def metrics(_: web.Request) -> web.Response:
        current = runtime()
        refresh_gauges(current)
        return web.Response(
            body=generate_latest(current.metrics.registry), headers={"content-type": CONTENT_TYPE_LATEST}
        )

    def served_models() -> dict[str, str]:
        current = runtime()
        return listed_models(current.config, current.router.targets)

    async def models(_: web.Request) -> web.Response:
        created = int(time.time())
        data = [_model(name, owner, created) for name, owner in served_models().items()]
        return web.Response(body=orjson.dumps({"object": "list", "data": data}), content_type="application/json")

    async def model(request: web.Request) -> web.Response:
        name = request.match_info["model"]
        owner = served_models().get(name)
        if owner is None:
            return bad_request_response(unknown_model(name))
        return web.Response(body=orjson.dumps(_model(name, owner, int(time.time()))), content_type="application/json")

    app.router.add_get("/livez", livez)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/v1/models/{model:.+}", model)
    add_router_routes(app, runtime, health_report)
    return app


def _model(name: str, owner: str, created: int) -> dict[str, str | int]:
    """A model object as OpenAI's API has it."""
    return {"id": name, "object": "model", "created": created, "owned_by": owner}


def health_report(runtime: Runtime) -> dict:
    clusters = [t for t in runtime.router.targets if t.is_cluster]
    providers = [t for t in runtime.router.targets if not t.is_cluster]
    healthy_clusters = sum(_available(runtime, t) for t in clusters)
    healthy_providers = sum(_available(runtime, t) for t in providers)
    healthy = healthy_clusters + healthy_providers
    total = len(clusters) + len(providers)
    return {
        "status": "healthy" if healthy == total else "degraded" if healthy else "unhealthy",
        "healthy_clusters": healthy_clusters,
        "total_clusters": len(clusters),
        "healthy_providers": healthy_providers,
        "total_providers": len(providers),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "clusters": {t.name: _cluster_section(runtime, t) for t in clusters},
        "providers": {
            t.name: {
                "healthy": _available(runtime, t),
                "type": t.family,
                "model": t.model,
                "circuit": runtime.router.guards.state(t.name).value,
            }
            for t in providers
        },
    }


def _available(runtime: Runtime, target: Target) -> bool:
    """Healthy and not cut off by its circuit breaker."""
    return runtime.status[target.name].healthy and runtime.router.guards.state(target.name) is not State.OPEN


def _cluster_section(runtime: Runtime, target: Target) -> dict:
    status = runtime.status[target.name]
    measured = status.measured_tokens_per_second
    return {
        "healthy": _available(runtime, target),
        "state": "ready" if status.healthy else (status.last_error or "not polled yet"),
        "circuit": runtime.router.guards.state(target.name).value,
        "queue_depth": status.waiting,
        "processing": status.processing,
        "in_flight": status.in_flight,
        "slots": status.total_slots,
        "context_window": min(status.context_window or target.context_window, target.context_window),
        "tokens_per_second": measured or target.tokens_per_second,
        "prompt_tokens_per_second": status.measured_prompt_tokens_per_second,
        "throughput_source": "measured" if measured else "declared",
        "cost_per_1k_tokens": runtime.router.live_price_per_1k(target),
        "cost_per_hour": target.cluster.cost_per_hour if target.cluster else None,
        "last_poll": status.last_poll,
    }


def refresh_gauges(runtime: Runtime) -> None:
    m = runtime.metrics
    for target in runtime.router.targets:
        status = runtime.status[target.name]
        m.circuit_open.labels(target.name).set(1 if runtime.router.guards.state(target.name) is State.OPEN else 0)
        if target.is_cluster:
            m.cluster_health.labels(target.name, target.family, target.region).set(
                1 if _available(runtime, target) else 0
            )
            price = runtime.router.live_price_per_1k(target)
            m.cluster_cost.labels(target.name, target.family).set(price)
            m.cluster_queue_depth.labels(target.name).set(status.waiting)
            m.cluster_tokens_per_second.labels(target.name).set(
                status.measured_tokens_per_second or target.tokens_per_second
            )
        else:
            m.provider_health.labels(target.name, target.family).set(1 if _available(runtime, target) else 0)
            m.provider_cost.labels(target.name, target.model).set(target.output_per_1k)
