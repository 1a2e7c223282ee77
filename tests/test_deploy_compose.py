"""docker-compose.yml: valid against the Compose Specification, every reference resolvable, the services wired
as the router config says, and its one-shot steps (model generation, Envoy bootstrap) run for real here, down
to llama.cpp started with the compose arguments and the controller's container health check passing."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from extproc.auth.config import hash_key
from extproc.config.loader import parse_config_text
from extproc.config.model import Config
from extproc.local.envoy_process import envoy_binary
from extproc.local.llama_server import free_port, llama_server_binary
from extproc.local.process import ManagedProcess
from extproc.local.stack import model_spec
from tests.deploy_support import REPO, envoy_validate, load_script

COMPOSE_FILE = REPO / "docker-compose.yml"
ROUTER_CONFIG = "/etc/llm-router/router.yaml"
PROVIDERS_ON = {
    "OPENAI_ENABLED": "true",
    "OPENAI_API_KEY": "sk-test",
    "ANTHROPIC_ENABLED": "true",
    "ANTHROPIC_API_KEY": "sk-ant-test",
    "GEMINI_ENABLED": "true",
    "GEMINI_API_KEY": "gm-test",
}
_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def _interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's ${VAR:-default} interpolation, for the values the tests compare."""
    if isinstance(value, str):
        return _INTERPOLATION.sub(lambda m: env.get(m.group(1), m.group(2) or ""), value)
    if isinstance(value, dict):
        return {k: _interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env) for v in value]
    return value


def _router_config_source(compose: dict[str, Any], service: str) -> Path:
    (mount,) = [v for v in compose["services"][service]["volumes"] if v["target"] == ROUTER_CONFIG]
    return REPO / mount["source"]


def _local_router_text(compose: dict[str, Any], service: str) -> str:
    """router.yaml as `service` reads it, with the paths of its other bind mounts (keys file) mapped here."""
    text = _router_config_source(compose, service).read_text()
    for volume in compose["services"][service]["volumes"]:
        if volume["type"] == "bind" and volume["target"] != ROUTER_CONFIG:
            text = text.replace(volume["target"], str(REPO / volume["source"]))
    return text


def _local_router_config(compose: dict[str, Any], service: str, directory: Path) -> Path:
    path = directory / "router.yaml"
    path.write_text(_local_router_text(compose, service))
    return path


def _config(compose: dict[str, Any], env: dict[str, str] | None = None) -> Config:
    environment = _interpolate(compose["services"]["controller"]["environment"], env or {})
    return parse_config_text(_local_router_text(compose, "controller"), environment, source="router.yaml")


def _flags(command: list[str]) -> dict[str, str]:
    return {
        a: command[i + 1]
        for i, a in enumerate(command[:-1])
        if a.startswith("-") and not command[i + 1].startswith("-")
    }


def test_compose_file_matches_the_compose_specification() -> None:
    """check-jsonschema with the Compose Specification schema it vendors (compose-spec/compose-spec)."""
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_reference_resolves(compose: dict[str, Any]) -> None:
    services = compose["services"]
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", (REPO / "Dockerfile").read_text(), re.MULTILINE | re.IGNORECASE)
    built_images = {s["image"] for s in services.values() if "build" in s}
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
        for volume in service.get("volumes", []):
            if volume["type"] == "bind":
                assert (REPO / volume["source"]).exists(), f"{name}: {volume['source']} does not exist"
            else:
                assert volume["source"] in compose["volumes"], f"{name}: undeclared volume {volume['source']}"
        if "build" in service:
            assert (REPO / service["build"]["context"] / "Dockerfile").exists()
            assert service["build"]["target"] in stages, f"{name}: no stage {service['build']['target']}"
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin {image}"
    # envoy-config reuses the controller image: it must be one compose builds.
    assert services["envoy-config"]["image"] in built_images
    used = {v["source"] for s in services.values() for v in s.get("volumes", []) if v["type"] == "volume"}
    assert used == set(compose["volumes"]), "declared but unused volumes"


def test_router_config_is_valid_with_and_without_providers(compose: dict[str, Any]) -> None:
    default = _config(compose)
    assert not default.enabled_providers and len(default.clusters) == 2
    enabled = _config(compose, PROVIDERS_ON)
    assert {p.name for p in enabled.enabled_providers} == {"openai", "claude", "gemini"}
    for service in ("model-init", "controller", "envoy-config"):
        assert _router_config_source(compose, service) == _router_config_source(compose, "controller")
        assert compose["services"][service]["environment"] == compose["services"]["controller"]["environment"]
        assert _local_router_text(compose, service) == _local_router_text(compose, "controller"), "same keys file"


def test_client_auth_is_on_with_the_documented_dev_key(compose: dict[str, Any]) -> None:
    """Auth is on in the compose example; its keys file is mounted read-only where router.yaml reads it, and
    the dev-only key docs/DEPLOYMENT.md publishes is the one it holds."""
    config = _config(compose)
    assert config.auth.enabled and not config.auth.keys and config.auth.redis_url is None
    document = yaml.safe_load(_router_config_source(compose, "controller").read_text())
    keys_file = document["auth"]["keysFile"]
    (mount,) = [v for v in compose["services"]["controller"]["volumes"] if v["target"] == keys_file]
    assert mount["type"] == "bind" and mount["read_only"] and (REPO / mount["source"]).is_file()
    dev_key = re.search(r"`(sk-llmr-dev-only-[a-z0-9-]+)`", (REPO / "docs" / "DEPLOYMENT.md").read_text())
    assert dev_key, "docs/DEPLOYMENT.md documents the dev-only client key"
    assert [k.key_hash for k in config.auth.file_keys] == [hash_key(dev_key.group(1))]


def test_services_are_wired_as_the_router_config_says(compose: dict[str, Any]) -> None:
    services = compose["services"]
    config = _config(compose)
    server = config.server
    assert server.controller_host == "controller" and server.controller_bind_host == "0.0.0.0"
    assert services["envoy"]["ports"] == [f"{server.port}:{server.port}"]
    assert set(services["controller"]["expose"]) == {str(server.grpc_port), str(server.http_port)}
    assert f"/dev/tcp/127.0.0.1/{server.envoy_admin_port}" in " ".join(services["envoy"]["healthcheck"]["test"])
    for cluster in config.clusters:
        service = services[cluster.endpoint.host]
        flags = _flags(service["command"])
        assert cluster.launch, "compose clusters are launched locally (model-init reads launch:)"
        spec = model_spec(cluster)
        assert service["image"].startswith("ghcr.io/ggml-org/llama.cpp:server")
        assert flags["--port"] == str(cluster.endpoint.port) and flags["--host"] == "0.0.0.0"
        assert flags["-np"] == str(cluster.launch.parallel) and flags["-c"] == str(spec.context_length)
        assert flags["--alias"] == cluster.model and "--metrics" in service["command"]
        assert flags["-m"] == f"/models/{cluster.name}.gguf"
        assert service["depends_on"]["model-init"]["condition"] == "service_completed_successfully"
        assert services["controller"]["depends_on"][cluster.endpoint.host]["condition"] == "service_healthy"


def test_prometheus_and_grafana_see_every_service(compose: dict[str, Any]) -> None:
    services = compose["services"]
    config = _config(compose)
    prometheus = yaml.safe_load((REPO / "deploy" / "compose" / "prometheus.yml").read_text())
    targets = {t for job in prometheus["scrape_configs"] for group in job["static_configs"] for t in group["targets"]}
    expected = {f"controller:{config.server.http_port}"} | {
        f"{c.endpoint.host}:{c.endpoint.port}" for c in config.clusters
    }
    assert targets == expected
    # rule_files: the chart's alert rules, mounted where the glob finds them.
    mounts = {v["target"]: REPO / v["source"] for v in services["prometheus"]["volumes"] if v["type"] == "bind"}
    rule_files = [
        source / path.relative_to(target).as_posix()
        for pattern in prometheus["rule_files"]
        for target, source in mounts.items()
        if (path := PurePosixPath(pattern)).is_relative_to(target)
    ]
    matched = sorted(f for r in rule_files for f in r.parent.glob(r.name))
    assert matched == [REPO / "charts" / "llm-router" / "alerts" / "llm-router-alerts.yaml"]
    assert yaml.safe_load(matched[0].read_text())["groups"][0]["rules"]
    grafana = {v["target"]: REPO / v["source"] for v in services["grafana"]["volumes"] if v["type"] == "bind"}
    datasource = yaml.safe_load((grafana["/etc/grafana/provisioning"] / "datasources" / "prometheus.yaml").read_text())[
        "datasources"
    ][0]
    assert datasource["url"] == f"http://prometheus:{services['prometheus']['ports'][0].split(':')[1]}"
    dashboards = yaml.safe_load((grafana["/etc/grafana/provisioning"] / "dashboards" / "llm-router.yaml").read_text())
    path = dashboards["providers"][0]["options"]["path"]
    assert path in grafana and (grafana[path] / "llm-router.json").exists()
    dashboard = yaml.safe_load((grafana[path] / "llm-router.json").read_text())
    uids = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p["targets"]}
    assert uids == {datasource["uid"]}


def test_envoy_image_is_the_envoy_the_tests_validate_with(compose: dict[str, Any]) -> None:
    version = subprocess.run([str(envoy_binary()), "--version"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"version: [0-9a-f]+/(\d+\.\d+\.\d+)/", version)
    assert match, version
    tested = match.group(1)
    assert compose["services"]["envoy"]["image"] == f"envoyproxy/envoy:v{tested}"


@pytest.mark.parametrize("providers", [False, True], ids=["clusters-only", "providers-enabled"])
def test_envoy_config_service_renders_a_bootstrap_envoy_accepts(
    compose: dict[str, Any], providers: bool, tmp_path: Path
) -> None:
    """Run the envoy-config service's command; the file lands where the envoy service reads it."""
    services = compose["services"]
    render, envoy = services["envoy-config"], services["envoy"]
    (render_volume,) = [v for v in render["volumes"] if v["type"] == "volume"]
    (envoy_volume,) = envoy["volumes"]
    assert render_volume["source"] == envoy_volume["source"]
    output = Path(render["command"][render["command"].index("-o") + 1])
    read = Path(envoy["command"][envoy["command"].index("-c") + 1])
    assert output.relative_to(render_volume["target"]) == read.relative_to(envoy_volume["target"])

    local = {
        ROUTER_CONFIG: str(_local_router_config(compose, "envoy-config", tmp_path)),
        str(output): str(tmp_path / "envoy.yaml"),
    }
    command = [local.get(a, a) for a in render["command"]]
    env = {**os.environ, **_interpolate(render["environment"], PROVIDERS_ON if providers else {})}
    subprocess.run([sys.executable, "-m", "extproc.cli", *command], check=True, env=env, capture_output=True)
    envoy_validate(tmp_path / "envoy.yaml")
    text = (tmp_path / "envoy.yaml").read_text()
    assert "sk-" not in text and "gm-test" not in text, "a secret leaked into the Envoy config"
    assert ("api.openai.com" in text) == providers
    assert "envoy.filters.http.ext_authz" in text, "client auth: Envoy checks every key"


# --- the one-shot model service, llama.cpp with the compose arguments, the controller health check ----------


@pytest.fixture(scope="module")
def models(compose: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the model-init service leaves in the models volume (its command, run here)."""
    directory = tmp_path_factory.mktemp("models")
    service = compose["services"]["model-init"]
    command = service["command"]
    config = _local_router_config(compose, "model-init", tmp_path_factory.mktemp("model-init"))
    local = {ROUTER_CONFIG: str(config), "/models": str(directory)}
    generate_model = load_script("generate_model")
    assert generate_model.main([local.get(a, a) for a in command]) == 0
    return directory


def test_model_init_writes_every_model_the_llama_services_load(compose: dict[str, Any], models: Path) -> None:
    for cluster in _config(compose).clusters:
        flags = _flags(compose["services"][cluster.endpoint.host]["command"])
        model = models / Path(flags["-m"]).name
        assert model.is_symlink() and model.resolve().parent == models.resolve()
        assert model.read_bytes()[:4] == b"GGUF" and model.stat().st_mode & 0o044 == 0o044


@pytest.fixture(scope="module")
def llama_from_compose(
    compose: dict[str, Any], models: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """llama-server started with llama-aws's exact compose arguments (model path and port mapped here)."""
    command = list(compose["services"]["llama-aws"]["command"])
    port = free_port()
    command[command.index("-m") + 1] = str(models / Path(command[command.index("-m") + 1]).name)
    command[command.index("--port") + 1] = str(port)
    command[command.index("--host") + 1] = "127.0.0.1"
    process = ManagedProcess("llama-server", tmp_path_factory.mktemp("llama") / "llama.log")
    process.launch([str(llama_server_binary()), *command])
    url = f"http://127.0.0.1:{port}"
    try:
        asyncio.run(process.wait_http_ready(f"{url}/health", 120))
        yield url
    finally:
        process.stop()


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_llama_server_runs_with_the_compose_arguments(compose: dict[str, Any], llama_from_compose: str) -> None:
    cluster = next(c for c in _config(compose).clusters if c.endpoint.host == "llama-aws")
    assert cluster.launch
    status, body = _get(f"{llama_from_compose}/props")
    props = json.loads(body)
    assert status == 200 and props["total_slots"] == cluster.launch.parallel
    assert props["default_generation_settings"]["n_ctx"] == cluster.context_window, "router and server agree"
    status, metrics = _get(f"{llama_from_compose}/metrics")
    assert status == 200 and "llamacpp:requests_deferred" in metrics


def test_controller_container_health_check(compose: dict[str, Any], llama_from_compose: str, tmp_path: Path) -> None:
    """The image's HEALTHCHECK script against a real controller serving the compose config (ports mapped)."""
    document = yaml.safe_load(_local_router_text(compose, "controller"))
    document["server"].update(
        grpcPort=free_port(),
        httpPort=free_port(),
        port=free_port(),
        envoyAdminPort=free_port(),
        controllerHost="127.0.0.1",
    )
    document["router"]["healthCheckInterval"] = "500ms"
    document["clusters"] = [{**document["clusters"][0], "endpoint": llama_from_compose}]
    config_file = tmp_path / "router.yaml"
    config_file.write_text(yaml.safe_dump(document))
    healthcheck = [sys.executable, str(REPO / "docker" / "healthcheck.py")]
    env = {**os.environ, "LLM_ROUTER_CONFIG": str(config_file)}
    assert load_script("healthcheck").health_url(str(config_file)) == (
        f"http://127.0.0.1:{document['server']['httpPort']}/health"
    )
    assert subprocess.run(healthcheck, env=env, capture_output=True).returncode == 1, "nothing listening yet"

    controller = ManagedProcess("controller", tmp_path / "controller.log")
    serve = shlex.split(f"{sys.executable} -m extproc.cli") + compose["services"]["controller"]["command"]
    controller.launch([config_file.as_posix() if a == ROUTER_CONFIG else a for a in serve])
    try:
        asyncio.run(controller.wait_http_ready(f"http://127.0.0.1:{document['server']['httpPort']}/health", 60))
        result = subprocess.run(healthcheck, env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    finally:
        controller.stop()
