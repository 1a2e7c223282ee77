"""The validated router configuration: plain frozen dataclasses, built by `loader.load_config`."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from extproc.observability.config import ObservabilityConfig
from extproc.routing.complexity import Tier
from extproc.security.tls_config import ClusterTls, ServerTls

STRATEGIES = ("hybrid", "cost", "latency", "cluster_first", "external_first", "capability")
PROVIDER_TYPES = ("openai", "claude", "gemini")
CLUSTER_AUTH_TYPES = ("none", "hmac", "mtls")


class Secret(str):
    """A credential: a str whose repr never shows the value."""

    def __repr__(self) -> str:
        return "Secret('***')"


@dataclass(frozen=True, slots=True)
class Url:
    scheme: str
    host: str
    port: int
    path: str  # without a trailing slash

    @classmethod
    def parse(cls, text: str) -> Url:
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))

    @property
    def tls(self) -> bool:
        return self.scheme == "https"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}{self.path}"


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per 1M tokens, plus the model's limits and the highest prompt tier it is trusted with."""

    input: float
    output: float
    context_window: int
    max_output: int
    tier: Tier


@dataclass(frozen=True, slots=True)
class Limits:
    """A target's own limits: its rate limits and how long to wait for a connection."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    connect_timeout: float = 5.0


@dataclass(frozen=True, slots=True)
class ServerConfig:
    port: int = 8080  # Envoy's listener: where clients send requests
    host: str = "0.0.0.0"
    envoy_admin_port: int = 9901
    grpc_port: int = 50051  # the controller's ext_proc / ext_authz gRPC server
    http_port: int = 8081  # the controller's admin HTTP server (/health, /metrics)
    controller_host: str = "127.0.0.1"  # where Envoy reaches the controller
    controller_bind_host: str | None = None  # where the controller listens (default: controller_host)
    replicas: tuple[tuple[int, int], ...] = ()  # more controllers Envoy balances: (grpcPort, httpPort) each
    max_request_bytes: int = 8 * 2**20
    request_timeout: float = 300.0  # seconds a whole routed request may take (0 = none)
    tls: ServerTls | None = None  # the listener's TLS (HTTPS, optionally client certificates)

    def controller_ports(self) -> list[tuple[int, int]]:
        """(gRPC, HTTP) ports of every controller replica, the main one first."""
        return [(self.grpc_port, self.http_port), *self.replicas]


@dataclass(frozen=True, slots=True)
class RouterConfig:
    routing_strategy: str = "hybrid"
    cluster_cost_threshold: float = 0.01  # $/1K tokens under which a cluster counts as cheap
    enable_external_fallback: bool = True
    health_check_interval: float = 30.0
    max_latency_ms: float = 5000.0
    max_queue_depth: int = 10
    default_max_tokens: int = 256  # expected output tokens when a request sets no max_tokens
    max_fallbacks: int = 2  # targets tried after the primary inside one request
    complexity_threshold: float | None = None  # calibrated score above which a prompt counts as complex
    breaker_failures: int = 5  # consecutive failures that open a target's circuit
    breaker_cooldown: float = 30.0  # seconds a circuit stays open before a probe request
    first_byte_timeout: float = 60.0  # an attempt with no response byte for this long fails over
    # Every response passes through the controller (its upstream exchange), which adds x-llm-router-cost-usd
    # to non-streamed ones. Off: a non-streamed request whose first target speaks OpenAI's format is rewritten
    # by the router's ext_proc and skips that exchange on its first try; Envoy's gRPC access log brings its
    # status and usage back (half the controller's work per request). That log must reach the controller that
    # routed the request: on for several controllers behind one Envoy (Istio mesh mode).
    responses_through_controller: bool = False


@dataclass(frozen=True, slots=True)
class LocalLaunch:
    """How `llm-router up` runs this cluster itself: a llama.cpp server on a generated tiny model."""

    n_layers: int = 2
    n_embd: int = 64
    parallel: int = 2  # slots; the server's context is the cluster's contextWindow per slot


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    name: str
    endpoint: Url
    cost_per_hour: float
    region: str = ""
    provider: str = "local"
    tokens_per_second: float = 50.0  # declared throughput: the prior until measurements arrive
    model: str = "local"
    context_window: int = 4096
    tier: Tier = Tier.MEDIUM
    auth_type: str = "none"
    shared_secret: Secret | None = None
    tls: ClusterTls | None = None  # the CA to trust, the certificate to present
    max_queue_depth: int | None = None
    launch: LocalLaunch | None = None
    limits: Limits = Limits()


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    name: str
    type: str  # openai, claude, gemini
    api_key: Secret
    default_model: str
    base_url: Url
    enabled: bool = True
    tier: Tier | None = None  # overrides the price table's tier for the default model
    limits: Limits = Limits()


BUDGET_PERIODS = {"1h": 3600, "1d": 86400, "30d": 30 * 86400}  # seconds; windows aligned to the Unix epoch


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A client key: only its sha256 is stored. Keys of one tenant share the tenant's budget."""

    name: str
    key_hash: str  # "sha256:<64 hex digits>"
    tenant: str
    allowed_models: frozenset[str] | None = None  # None: any model
    allowed_strategies: tuple[str, ...] | None = None  # None: any; the first is the default if need be
    requests_per_minute: int | None = None
    budget_usd: float | None = None
    budget_period: str = "30d"


@dataclass(frozen=True, slots=True)
class AuthConfig:
    enabled: bool = False
    keys: tuple[ApiKey, ...] = ()  # given inline
    keys_file: str | None = None  # re-read when it changes, for rotation
    file_keys: tuple[ApiKey, ...] = ()  # the keys file's, as loaded with the config
    redis_url: Secret | None = None  # shared rate and budget state across controller replicas


@dataclass(frozen=True, slots=True)
class ModelAlias:
    """`modelAliases.<name>`: what a client's `model` maps to (a minimum tier and/or a set of targets)."""

    name: str
    min_tier: Tier | None = None
    targets: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class ExperimentArm:
    name: str
    weight: float
    strategy: str


@dataclass(frozen=True, slots=True)
class Experiment:
    """An A/B split between strategies, sticky per tenant or per the value of a request header."""

    name: str
    arms: tuple[ExperimentArm, ...]
    sticky_header: str | None = None  # None: sticky per tenant


@dataclass(frozen=True, slots=True)
class CacheConfig:
    """Exact-match cache of non-streamed, deterministic (temperature 0) completions, per tenant."""

    enabled: bool = False
    max_entries: int = 10_000
    max_entry_bytes: int = 1 * 2**20
    ttl: float = 300.0


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig
    router: RouterConfig
    clusters: tuple[ClusterConfig, ...]
    providers: tuple[ProviderConfig, ...]
    prices: dict[str, ModelPrice] = field(default_factory=dict)
    auth: AuthConfig = AuthConfig()
    observability: ObservabilityConfig = field(default_factory=ObservabilityConfig)
    model_aliases: tuple[ModelAlias, ...] = ()
    experiment: Experiment | None = None
    cache: CacheConfig = CacheConfig()

    @property
    def enabled_providers(self) -> tuple[ProviderConfig, ...]:
        return tuple(p for p in self.providers if p.enabled)

    @property
    def prepares_first_attempts(self) -> bool:
        """Whether the router's ext_proc rewrites first attempts itself (see `responses_through_controller`):
        never with extra replicas, whose access log may reach another controller."""
        return not self.router.responses_through_controller and not self.server.replicas
