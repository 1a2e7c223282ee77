"""Load one router YAML file (seed format, camelCase keys) into a validated `Config`.

Every problem is collected with its key path, so `llm-router validate` can report them all at once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from extproc.auth.config import parse_auth
from extproc.config.expand import expand
from extproc.config.intelligence import parse_cache, parse_experiment, parse_model_aliases
from extproc.config.model import (
    CLUSTER_AUTH_TYPES,
    PROVIDER_TYPES,
    STRATEGIES,
    ClusterConfig,
    Config,
    Limits,
    LocalLaunch,
    ModelAlias,
    ModelPrice,
    ProviderConfig,
    RouterConfig,
    Secret,
    ServerConfig,
    Url,
)
from extproc.config.reader import Problems, Reader
from extproc.observability.config import parse_observability
from extproc.routing.complexity import Tier
from extproc.security.tls_config import cluster_tls, server_tls

PROVIDER_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "claude": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com",
}
_PROVIDER_TYPE_ALIASES = {"anthropic": "claude", "google": "gemini"}


class ConfigError(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))
        self.problems = problems


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """Read, expand and validate a config file; raises ConfigError listing every problem."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror})"]) from exc
    return parse_config_text(text, env, source=str(path))


def parse_config_text(text: str, env: Mapping[str, str] | None = None, *, source: str = "<config>") -> Config:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{source}: not valid YAML ({exc})"]) from exc
    return parse_config(document, env)


def parse_config(document: Any, env: Mapping[str, str] | None = None) -> Config:
    expanded, unset = expand(document, os.environ if env is None else env)
    problems = Problems(str(u) for u in unset)
    root = Reader(expanded, "", problems)
    server = _server(root.section("server"))
    router = _router(root.section("router"))
    prices = _prices(root.section("pricing"))
    auth = parse_auth(root.section("auth"))
    observability = parse_observability(root.section("observability"), prices)
    aliases = parse_model_aliases(root.section("modelAliases"))
    experiment = parse_experiment(root.section("experiment"))
    cache = parse_cache(root.section("cache"))
    clusters = tuple(c for c in (_cluster(Reader(n, p, problems)) for p, n in root.items("clusters")) if c)
    providers = tuple(
        p for p in (_provider(Reader(n, at, problems), prices) for at, n in root.items("externalProviders")) if p
    )
    root.finish()
    _check_names(clusters, providers, problems)
    _check_ports(server, problems)
    _check_alias_targets(aliases, {c.name for c in clusters} | {p.name for p in providers}, problems)
    if not clusters and not any(p.enabled for p in providers):
        problems.add("clusters", "no cluster and no enabled external provider: nothing to route to")
    if problems:
        raise ConfigError(list(problems))
    return Config(server, router, clusters, providers, prices, auth, observability, aliases, experiment, cache)


def _check_alias_targets(aliases: tuple[ModelAlias, ...], names: set[str], problems: Problems) -> None:
    for alias in aliases:
        for unknown in sorted((alias.targets or frozenset()) - names):
            problems.add(f"modelAliases.{alias.name}.targets", f"no cluster or provider is named {unknown!r}")


def shipped_prices() -> dict[str, ModelPrice]:
    table = yaml.safe_load(resources.files("extproc.config").joinpath("prices.yaml").read_text())
    problems = Problems()
    prices = {name: _price(Reader(entry, f"prices.{name}", problems)) for name, entry in table.items()}
    if problems:
        raise ConfigError(list(problems))
    return prices


def _server(r: Reader) -> ServerConfig:
    d = ServerConfig()
    server = ServerConfig(
        port=r.port("port", d.port),
        host=r.string("host", d.host) or d.host,
        envoy_admin_port=r.port("envoyAdminPort", d.envoy_admin_port),
        grpc_port=r.port("grpcPort", d.grpc_port),
        http_port=r.port("httpPort", d.http_port),
        controller_host=r.string("controllerHost", d.controller_host) or d.controller_host,
        controller_bind_host=r.string("controllerBindHost"),
        replicas=tuple(_replica(Reader(node, at, r.problems)) for at, node in r.items("replicas")),
        max_request_bytes=r.size("maxRequestBytes", d.max_request_bytes),
        request_timeout=r.duration("requestTimeout", d.request_timeout),
        tls=server_tls(r),
    )
    r.finish()
    return server


def _replica(r: Reader) -> tuple[int, int]:
    ports = (r.port("grpcPort", 0), r.port("httpPort", 0))
    for key, port in zip(("grpcPort", "httpPort"), ports, strict=True):
        if not port:
            r.problems.add(r.at(key), "is required")
    r.finish()
    return ports


def _router(r: Reader) -> RouterConfig:
    d = RouterConfig()
    router = RouterConfig(
        routing_strategy=r.choice("routingStrategy", STRATEGIES, d.routing_strategy),
        cluster_cost_threshold=r.number("clusterCostThreshold", d.cluster_cost_threshold, non_negative=True),
        enable_external_fallback=r.boolean("enableExternalFallback", d.enable_external_fallback),
        health_check_interval=r.duration("healthCheckInterval", d.health_check_interval),
        max_latency_ms=r.number("maxLatencyMs", d.max_latency_ms, positive=True),
        max_queue_depth=r.integer("maxQueueDepth", d.max_queue_depth),
        default_max_tokens=r.integer("defaultMaxTokens", d.default_max_tokens, minimum=1),
        max_fallbacks=r.integer("maxFallbacks", d.max_fallbacks, maximum=4),
        complexity_threshold=r.number("complexityThreshold", None, non_negative=True),
        breaker_failures=r.integer("circuitBreakerFailures", d.breaker_failures, minimum=1),
        breaker_cooldown=r.duration("circuitBreakerCooldown", d.breaker_cooldown),
        first_byte_timeout=r.duration("firstByteTimeout", d.first_byte_timeout),
        responses_through_controller=r.boolean("responsesThroughController", d.responses_through_controller),
    )
    if router.health_check_interval <= 0:
        r.problems.add(r.at("healthCheckInterval"), "must be longer than 0s")
    r.finish()
    return router


def _prices(r: Reader) -> dict[str, ModelPrice]:
    prices = shipped_prices()
    for model in r.node:
        prices[model] = _price(r.section(model), prices.get(model))
    r.finish()
    return prices


def _price(r: Reader, base: ModelPrice | None = None) -> ModelPrice:
    required = base is None
    price = ModelPrice(
        input=r.number("input", base and base.input, non_negative=True, required=required) or 0.0,
        output=r.number("output", base and base.output, non_negative=True, required=required) or 0.0,
        context_window=r.integer("contextWindow", base.context_window if base else 8192, minimum=1),
        max_output=r.integer("maxOutput", base.max_output if base else 4096, minimum=1),
        tier=_tier(r, "tier", base.tier if base else Tier.MEDIUM),
    )
    r.finish()
    return price


def _tier(r: Reader, key: str, default: Tier) -> Tier:
    text = r.string(key)
    if text is None:
        return default
    try:
        return Tier.parse(text)
    except ValueError as exc:
        r.problems.add(r.at(key), str(exc))
        return default


def _url(r: Reader, key: str, default: str | None = None) -> Url | None:
    text = r.string(key, default, required=default is None)
    if text is None:
        return None
    try:
        return Url.parse(text)
    except ValueError as exc:
        r.problems.add(r.at(key), str(exc))
        return None


def _secret(r: Reader, key: str) -> Secret | None:
    """A credential given inline (usually `${VAR}`) or as `<key>File`: a path whose content is the secret."""
    inline = r.string(key)
    file = r.string(f"{key}File")
    if inline and file:
        r.problems.add(r.at(key), f"give either {key} or {key}File, not both")
    if file:
        try:
            return Secret(Path(file).read_text().strip())
        except OSError as exc:
            r.problems.add(r.at(f"{key}File"), f"cannot read ({exc.strerror})")
            return None
    return Secret(inline) if inline else None


def _cluster(r: Reader) -> ClusterConfig | None:
    d = ClusterConfig(name="", endpoint=Url("http", "localhost", 80, ""), cost_per_hour=1.0)
    name = r.string("name", required=True)
    endpoint = _url(r, "endpoint")
    cost = r.number("costPerHour", required=True, positive=True)
    auth_type = r.choice("authType", CLUSTER_AUTH_TYPES, d.auth_type)
    secret = _secret(r, "sharedSecret")
    if auth_type == "hmac" and not secret:
        r.problems.add(r.at("sharedSecret"), "is required when authType is hmac")
    launch = _launch(r.section("launch")) if r.has("launch") else r.raw("launch")
    cluster = ClusterConfig(
        name=name or "",
        endpoint=endpoint or d.endpoint,
        cost_per_hour=cost or d.cost_per_hour,
        region=r.string("region", "") or "",
        provider=r.string("provider", d.provider) or d.provider,
        tokens_per_second=r.number("tokensPerSecond", d.tokens_per_second, positive=True) or 1.0,
        model=r.string("model", d.model) or d.model,
        context_window=r.integer("contextWindow", d.context_window, minimum=1),
        tier=_tier(r, "tier", d.tier),
        auth_type=auth_type,
        shared_secret=secret,
        tls=cluster_tls(r, auth_type, https=endpoint is None or endpoint.tls),
        max_queue_depth=r.integer("maxQueueDepth", -1) if r.has("maxQueueDepth") else None,
        launch=launch,
        limits=_limits(r),
    )
    r.finish()
    return cluster if name and endpoint and cost else None


def _limits(r: Reader) -> Limits:
    rpm = r.integer("requestsPerMinute", 0, minimum=1) if r.has("requestsPerMinute") else None
    tpm = r.integer("tokensPerMinute", 0, minimum=1) if r.has("tokensPerMinute") else None
    connect = r.duration("connectTimeout", Limits().connect_timeout)
    return Limits(requests_per_minute=rpm, tokens_per_minute=tpm, connect_timeout=max(connect, 0.001))


def _launch(r: Reader) -> LocalLaunch:
    d = LocalLaunch()
    launch = LocalLaunch(
        n_layers=r.integer("layers", d.n_layers, minimum=1, maximum=64),
        n_embd=r.integer("embeddingSize", d.n_embd, minimum=16, maximum=4096),
        parallel=r.integer("parallel", d.parallel, minimum=1, maximum=64),
    )
    r.finish()
    return launch


def _provider(r: Reader, prices: dict[str, ModelPrice]) -> ProviderConfig | None:
    name = r.string("name", required=True)
    raw_type = r.string("type", required=True) or ""
    kind = _PROVIDER_TYPE_ALIASES.get(raw_type, raw_type)
    if raw_type and kind not in PROVIDER_TYPES:
        r.problems.add(r.at("type"), f"must be one of {', '.join(PROVIDER_TYPES)} (got {raw_type!r})")
    enabled = r.boolean("enabled", True)
    key = _secret(r, "apiKey")
    if enabled and not key:
        r.problems.add(r.at("apiKey"), "is required for an enabled provider (or set enabled: false)")
    model = r.string("defaultModel", required=True)
    if enabled and model and model not in prices:
        r.problems.add(r.at("defaultModel"), f"{model!r} has no price: add it under pricing.{model}")
    base_url = _url(r, "baseUrl", PROVIDER_BASE_URLS.get(kind, "https://invalid"))
    provider = ProviderConfig(
        name=name or "",
        type=kind,
        api_key=key or Secret(""),
        default_model=model or "",
        base_url=base_url or Url.parse("https://invalid"),
        enabled=enabled,
        tier=_tier(r, "tier", Tier.SIMPLE) if r.has("tier") else None,
        limits=_limits(r),
    )
    r.finish()
    return provider if name and model and kind in PROVIDER_TYPES else None


def _check_names(
    clusters: tuple[ClusterConfig, ...], providers: tuple[ProviderConfig, ...], problems: Problems
) -> None:
    seen: dict[str, str] = {}
    entries = [(f"clusters[{i}]", c.name) for i, c in enumerate(clusters)]
    entries += [(f"externalProviders[{i}]", p.name) for i, p in enumerate(providers)]
    for at, name in entries:
        if not _valid_name(name):
            problems.add(f"{at}.name", "must use only letters, digits, '-', '_' and '.'")
        if name in seen:
            problems.add(f"{at}.name", f"duplicate target name {name!r} (also {seen[name]})")
        seen.setdefault(name, at)


def _valid_name(name: str) -> bool:
    return bool(name) and all(ch.isalnum() or ch in "-_." for ch in name)


def _check_ports(server: ServerConfig, problems: Problems) -> None:
    ports = {
        "port": server.port,
        "envoyAdminPort": server.envoy_admin_port,
        "grpcPort": server.grpc_port,
        "httpPort": server.http_port,
    }
    for index, (grpc_port, http_port) in enumerate(server.replicas):
        ports[f"replicas[{index}].grpcPort"] = grpc_port
        ports[f"replicas[{index}].httpPort"] = http_port
    seen: dict[int, str] = {}
    for key, port in ports.items():
        if port in seen:
            problems.add(f"server.{key}", f"port {port} is also server.{seen[port]}")
        seen.setdefault(port, key)
