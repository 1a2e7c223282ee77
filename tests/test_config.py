"""Config loading: seed format, ${VAR} expansion, every problem reported with its key path."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from extproc.cli import main
from extproc.config.default import default_config
from extproc.config.loader import ConfigError, parse_config_text
from extproc.config.model import Secret

SEED = textwrap.dedent("""
    server: {port: 8080}
    router:
      routingStrategy: hybrid
      clusterCostThreshold: 0.01
      enableExternalFallback: true
      healthCheckInterval: 30s
      maxLatencyMs: 5000
      maxQueueDepth: 10
    clusters:
      - {name: aws-us-west-2, endpoint: https://aws.llm.example.com, region: us-west-2, provider: aws,
         costPerHour: 0.0928, authType: hmac, sharedSecret: "${AWS_CLUSTER_SECRET}"}
    externalProviders:
      - {name: openai, type: openai, enabled: true, apiKey: "${OPENAI_API_KEY}", defaultModel: gpt-4o-mini}
      - {name: claude, type: claude, enabled: true, apiKey: "${ANTHROPIC_API_KEY}",
         defaultModel: claude-3-5-haiku-20241022}
      - {name: gemini, type: gemini, enabled: true, apiKey: "${GEMINI_API_KEY}", defaultModel: gemini-2.0-flash}
""")
SEED_ENV = {
    "AWS_CLUSTER_SECRET": "s3",
    "OPENAI_API_KEY": "k1",
    "ANTHROPIC_API_KEY": "k2",
    "GEMINI_API_KEY": "k3",
}


def problems_of(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config_text(text, env if env is not None else SEED_ENV)
    return caught.value.problems


def test_seed_config_loads_with_its_values() -> None:
    config = parse_config_text(SEED, SEED_ENV)
    assert config.server.port == 8080
    assert config.router.health_check_interval == 30.0
    cluster = config.clusters[0]
    assert (cluster.name, cluster.endpoint.host, cluster.endpoint.port, cluster.endpoint.tls) == (
        "aws-us-west-2",
        "aws.llm.example.com",
        443,
        True,
    )
    assert cluster.shared_secret == "s3" and isinstance(cluster.shared_secret, Secret)
    assert [p.type for p in config.providers] == ["openai", "claude", "gemini"]
    assert str(config.providers[1].base_url) == "https://api.anthropic.com:443"


def test_secrets_never_show_in_repr() -> None:
    config = parse_config_text(SEED, SEED_ENV)
    assert "k1" not in repr(config) and "s3" not in repr(config)


def test_unset_variable_is_named_with_its_key_path() -> None:
    env = dict(SEED_ENV)
    del env["OPENAI_API_KEY"]
    problems = problems_of(SEED, env)
    assert any(
        p.startswith("externalProviders[0].apiKey: environment variable OPENAI_API_KEY is not set") for p in problems
    )


def test_default_value_in_reference_is_used() -> None:
    text = SEED.replace("${GEMINI_API_KEY}", "${GEMINI_API_KEY:-fallback-key}")
    env = {k: v for k, v in SEED_ENV.items() if k != "GEMINI_API_KEY"}
    assert parse_config_text(text, env).providers[2].api_key == "fallback-key"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("costPerHour: 0.0928", "costPerHour: -1"), "clusters[0].costPerHour: must be a positive number"),
        (("routingStrategy: hybrid", "routingStrategy: cheapest"), "router.routingStrategy: must be one of"),
        (
            ("healthCheckInterval: 30s", "healthCheckInterval: soon"),
            "router.healthCheckInterval: must be a duration",
        ),
        (("endpoint: https://aws.llm.example.com", "endpoint: aws"), "clusters[0].endpoint: must be an http"),
        (("type: gemini", "type: mistral"), "externalProviders[2].type: must be one of"),
        (("maxQueueDepth: 10", "maxQueueDepth: lots"), "router.maxQueueDepth: must be a whole number"),
        (("server: {port: 8080}", "server: {port: 70000}"), "server.port: must be between 1 and 65535"),
        (
            ("defaultModel: gpt-4o-mini", "defaultModel: gpt-9"),
            "externalProviders[0].defaultModel: 'gpt-9' has no price",
        ),
        (
            ("maxLatencyMs: 5000", "maxLatencyMs: 5000\n  routingStratgy: cost"),
            "router.routingStratgy: unknown key",
        ),
    ],
)
def test_each_problem_is_reported_with_its_key_path(change: tuple[str, str], expected: str) -> None:
    problems = problems_of(SEED.replace(*change))
    assert any(p.startswith(expected) for p in problems), problems


def test_all_problems_are_reported_at_once() -> None:
    broken = SEED.replace("costPerHour: 0.0928", "costPerHour: 0").replace(
        "routingStrategy: hybrid", "routingStrategy: x"
    )
    assert len(problems_of(broken)) >= 2


def test_hmac_cluster_needs_a_secret() -> None:
    problems = problems_of(SEED.replace(', sharedSecret: "${AWS_CLUSTER_SECRET}"', ""))
    assert "clusters[0].sharedSecret: is required when authType is hmac" in problems


def test_duplicate_names_and_ports_are_rejected() -> None:
    text = SEED.replace("name: gemini,", "name: openai,").replace(
        "server: {port: 8080}", "server: {port: 8080, grpcPort: 8080}"
    )
    problems = problems_of(text)
    assert any("duplicate target name 'openai'" in p for p in problems)
    assert any(p.startswith("server.grpcPort: port 8080") for p in problems)


def test_secret_from_file(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("from-file\n")
    text = SEED.replace('apiKey: "${OPENAI_API_KEY}"', f"apiKeyFile: {key}")
    assert parse_config_text(text, SEED_ENV).providers[0].api_key == "from-file"


def test_pricing_override_and_new_model() -> None:
    text = SEED + "pricing:\n  gpt-4o-mini: {input: 1.0}\n  my-model: {input: 0.1, output: 0.2, contextWindow: 1000}\n"
    config = parse_config_text(text, SEED_ENV)
    assert config.prices["gpt-4o-mini"].input == 1.0 and config.prices["gpt-4o-mini"].output == 0.60
    assert config.prices["my-model"].context_window == 1000


def test_embedded_default_enables_only_providers_with_keys() -> None:
    assert [p.name for p in default_config({}).enabled_providers] == []
    assert [p.name for p in default_config({"GEMINI_API_KEY": "g"}).enabled_providers] == ["gemini"]
    assert [c.name for c in default_config({}).clusters] == ["local-aws", "local-gcp"]


def test_validate_command_reports_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "router.yaml"
    path.write_text(SEED.replace("costPerHour: 0.0928", "costPerHour: nope"))
    assert main(["validate", "--config", str(path)]) == 1
    assert "clusters[0].costPerHour: must be a number" in capsys.readouterr().err


def test_validate_command_accepts_a_good_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in SEED_ENV.items():
        monkeypatch.setenv(key, value)
    path = tmp_path / "router.yaml"
    path.write_text(SEED)
    assert main(["validate", "--config", str(path)]) == 0
    assert "OK (1 clusters, 3 enabled providers" in capsys.readouterr().out
