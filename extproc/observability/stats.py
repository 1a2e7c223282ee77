"""The dashboard's live numbers, read from the metrics (one source of truth) plus the recent decisions.

The counters are read as /metrics shows them: under `serve --workers N`, every worker's counts added up (the
recent decisions are the answering worker's own)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.samples import Sample

if TYPE_CHECKING:
    from extproc.server.runtime import Runtime

RECENT_SHOWN = 50


def router_stats(runtime: Runtime, health: dict[str, Any]) -> dict[str, Any]:
    m = runtime.metrics
    counters = _counter_totals(m.registry)
    requests = _sum_by(counters, m.requests, "target")
    errors = _sum_by(counters, m.requests, "target", errors_only=True)
    spend, baseline = _sum_by(counters, m.spend, "target"), _sum_by(counters, m.baseline_cost, "target")
    total_requests = sum(requests.values())
    total_spend, total_baseline = sum(spend.values()), sum(baseline.values())
    targets = [
        {
            "name": t.name,
            "kind": t.kind.value,
            "model": t.model,
            "requests": requests.get(t.name, 0.0),
            "errors": errors.get(t.name, 0.0),
            "share": requests.get(t.name, 0.0) / total_requests if total_requests else 0.0,
            "spend_usd": spend.get(t.name, 0.0),
            "baseline_usd": baseline.get(t.name, 0.0),
            "price_per_1k_usd": runtime.router.live_price_per_1k(t),
        }
        for t in runtime.router.targets
    ]
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "baseline_model": runtime.config.observability.baseline_model,
        "totals": {
            "requests": total_requests,
            "spend_usd": total_spend,
            "baseline_usd": total_baseline,
            "savings_usd": total_baseline - total_spend if total_baseline else 0.0,
            "savings_ratio": 1 - total_spend / total_baseline if total_baseline else None,
            "decisions_by_reason": _sum_by(counters, m.routing_decisions, "reason"),
        },
        "targets": targets,
        "health": health,
        "recent": list(reversed(runtime.observer.log.recent))[:RECENT_SHOWN],
    }


def _counter_totals(registry: CollectorRegistry) -> dict[str, list[Sample]]:
    """Every counter's `_total` samples, by the counter's name."""
    return {
        family.name: [sample for sample in family.samples if sample.name.endswith("_total")]
        for family in registry.collect()
        if family.type == "counter"
    }


def _sum_by(
    counters: dict[str, list[Sample]], metric: MetricWrapperBase, label: str, *, errors_only: bool = False
) -> dict[str, float]:
    """`metric`'s samples in `counters` summed by one label (other labels, e.g. tenant, are added up)."""
    totals: dict[str, float] = {}
    for sample in counters.get(metric.describe()[0].name, []):
        if errors_only and not sample.labels.get("status", "").startswith("5"):
            continue
        key = sample.labels.get(label, "")
        totals[key] = totals.get(key, 0.0) + sample.value
    return totals
