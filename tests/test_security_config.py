"""TLS/mTLS/HMAC config and what it renders: validation with key paths, Envoy TLS contexts by file path, the
cluster gateway's bootstrap (accepted by real Envoy), no secret anywhere, and `llm-router certs`."""

from __future__ import annotations

import datetime
import os
import stat
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from extproc.cli import main
from extproc.config.loader import ConfigError, parse_config_text
from extproc.envoy_config.bootstrap import render_bootstrap, render_bootstrap_yaml
from extproc.envoy_config.cluster_gateway import render_gateway_bootstrap, render_gateway_bootstrap_yaml
from extproc.local.envoy_process import envoy_binary
from extproc.security.gateway_config import parse_gateway_config
from tests.security_helpers import CLUSTER_SECRET, Certs, dev_certs  # noqa: F401

ENV = {"CLUSTER_SECRET": CLUSTER_SECRET}


def router_yaml(certs: Certs, **overrides: str) -> str:
    values = {
        "server_tls": f"{{certFile: {certs['server.crt']}, keyFile: {certs['server.key']}, "
        f"clientCaFile: {certs['ca.crt']}, requireClientCertificate: true}}",
        "signed_tls": f"{{caFile: {certs['ca.crt']}}}",
        "mutual_tls": f"{{caFile: {certs['ca.crt']}, certFile: {certs['cluster-client.crt']}, "
        f"keyFile: {certs['cluster-client.key']}}}",
        **overrides,
    }
    return textwrap.dedent(f"""
        server: {{port: 8443, tls: {values["server_tls"]}}}
        clusters:
          - {{name: signed, endpoint: "https://127.0.0.1:9443", costPerHour: 0.1, authType: hmac,
             sharedSecret: "${{CLUSTER_SECRET}}", tls: {values["signed_tls"]}}}
          - {{name: mutual, endpoint: "https://gw.example.com", costPerHour: 0.1, authType: mtls,
             tls: {values["mutual_tls"]}}}
    """)


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config_text(text, ENV)
    return caught.value.problems


def transport(resource: dict[str, Any]) -> dict[str, Any]:
    return resource["transport_socket"]["typed_config"]


def test_tls_settings_load_as_absolute_paths(dev_certs: Certs, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.chdir(dev_certs.dir)
    config = parse_config_text(router_yaml(dev_certs, signed_tls="{caFile: ca.crt}"), ENV)
    assert config.server.tls is not None and config.server.tls.require_client_certificate
    assert config.clusters[0].tls is not None and config.clusters[0].tls.ca_file == dev_certs["ca.crt"]
    assert config.clusters[1].tls is not None and config.clusters[1].tls.cert_file == dev_certs["cluster-client.crt"]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"server_tls": "{certFile: /nope.crt, keyFile: /nope.key}"}, "server.tls.certFile: cannot read ("),
        ({"server_tls": "{keyFile: /nope.key}"}, "server.tls.certFile: is required"),
        ({"server_tls": "{certFile: /etc/hostname, keyFile: /nope.key}"}, "server.tls.certFile: is not a PEM file"),
        ({"signed_tls": "{caFile: /nope.crt}"}, "clusters[0].tls.caFile: cannot read ("),
        ({"mutual_tls": "{caFile: /etc/hostname}"}, "clusters[1].tls: certFile and keyFile are required"),
        ({"signed_tls": "{cafile: x}"}, "clusters[0].tls.cafile: unknown key"),
    ],
)
def test_tls_problems_carry_their_key_path(
    dev_certs: Certs,  # noqa: F811
    overrides: dict[str, str],
    expected: str,
) -> None:
    problems = problems_of(router_yaml(dev_certs, **overrides))
    assert any(p.startswith(expected) for p in problems), problems


def test_client_certificates_need_a_ca_and_mtls_needs_https(dev_certs: Certs) -> None:  # noqa: F811
    text = router_yaml(
        dev_certs,
        server_tls=f"{{certFile: {dev_certs['server.crt']}, keyFile: "
        f"{dev_certs['server.key']}, requireClientCertificate: true}}",
    )
    text = text.replace("https://gw.example.com", "http://gw.example.com")
    problems = problems_of(text)
    assert "server.tls.clientCaFile: is required when requireClientCertificate is true" in problems
    assert "clusters[1].endpoint: must be an https:// URL when authType is mtls" in problems
    assert "clusters[1].tls: needs an https:// endpoint" in problems


def test_listener_and_clusters_reference_the_files_never_their_contents(dev_certs: Certs) -> None:  # noqa: F811
    config = parse_config_text(router_yaml(dev_certs), ENV)
    bootstrap = render_bootstrap(config)
    resources = bootstrap["static_resources"]
    listener = transport(resources["listeners"][0]["filter_chains"][0])
    assert listener["require_client_certificate"] is True
    common = listener["common_tls_context"]
    assert common["tls_certificates"] == [
        {
            "certificate_chain": {"filename": dev_certs["server.crt"]},
            "private_key": {"filename": dev_certs["server.key"]},
        }
    ]
    assert common["validation_context"]["trusted_ca"] == {"filename": dev_certs["ca.crt"]}

    clusters = {c["name"]: c for c in resources["clusters"]}
    signed = transport(clusters["target_signed"])
    assert "sni" not in signed, "SNI carries host names, not IPs"
    assert signed["common_tls_context"]["validation_context"] == {
        "trusted_ca": {"filename": dev_certs["ca.crt"]},
        "match_typed_subject_alt_names": [{"san_type": "IP_ADDRESS", "matcher": {"exact": "127.0.0.1"}}],
    }
    assert "tls_certificates" not in signed["common_tls_context"]
    mutual = transport(clusters["target_mutual"])
    assert mutual["sni"] == "gw.example.com"
    assert mutual["common_tls_context"]["tls_certificates"][0]["certificate_chain"] == {
        "filename": dev_certs["cluster-client.crt"]
    }
    text = render_bootstrap_yaml(config)
    assert CLUSTER_SECRET not in text and "BEGIN" not in text


def gateway_document(certs: Certs, **extra: Any) -> dict[str, Any]:
    return {
        "server": {
            "port": 9443,
            "envoyAdminPort": 9902,
            "grpcPort": 50061,
            "httpPort": 8082,
            "tls": {**certs.pair("cluster-server"), "clientCaFile": certs["ca.crt"], "requireClientCertificate": True},
        },
        "upstream": "http://127.0.0.1:8080",
        "sharedSecret": "${CLUSTER_SECRET}",
        "signatureWindow": "30s",
        "publicPaths": ["/health", "/props"],
        **extra,
    }


def test_gateway_config_loads_and_reports_problems_with_key_paths(dev_certs: Certs) -> None:  # noqa: F811
    config = parse_gateway_config(gateway_document(dev_certs), ENV)
    assert config.shared_secret == CLUSTER_SECRET and "***" in repr(config)
    assert (config.signature_window, config.public_paths, config.upstream.port) == (30.0, ("/health", "/props"), 8080)
    assert config.server.tls is not None and config.server.tls.require_client_certificate
    broken = gateway_document(dev_certs, signatureWindow="0s", publicPaths=["health"], upstream="llama:8080")
    broken["server"]["tls"]["certFile"] = "/nope.crt"
    with pytest.raises(ConfigError) as caught:
        parse_gateway_config(broken, {})
    assert set(caught.value.problems) >= {
        "sharedSecret: environment variable CLUSTER_SECRET is not set (use ${CLUSTER_SECRET:-default})",
        "server.tls.certFile: cannot read (No such file or directory)",
        "upstream: must be an http:// or https:// URL with a host",
        "signatureWindow: must be longer than 0s",
        "publicPaths: 'health' must start with /",
    }


def test_gateway_envoy_sends_the_whole_body_to_ext_authz_except_on_public_gets(dev_certs: Certs) -> None:  # noqa: F811
    bootstrap = render_gateway_bootstrap(parse_gateway_config(gateway_document(dev_certs), ENV))
    chain = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]
    assert transport(chain)["require_client_certificate"] is True
    manager = chain["filters"][0]["typed_config"]
    authz = manager["http_filters"][0]["typed_config"]
    assert authz["failure_mode_allow"] is False
    assert authz["with_request_body"] == {
        "max_request_bytes": 8 * 2**20,
        "allow_partial_message": False,
        "pack_as_bytes": True,
    }
    routes = manager["route_config"]["virtual_hosts"][0]["routes"]
    assert [r["match"].get("path") for r in routes] == ["/health", "/props", None]
    assert all(r["typed_per_filter_config"]["envoy.filters.http.ext_authz"]["disabled"] for r in routes[:2])
    assert routes[0]["match"]["headers"][0]["string_match"] == {"exact": "GET"}
    assert "typed_per_filter_config" not in routes[2]


def test_gateway_without_a_secret_is_envoy_alone(dev_certs: Certs) -> None:  # noqa: F811
    document = gateway_document(dev_certs)
    del document["sharedSecret"]
    bootstrap = render_gateway_bootstrap(parse_gateway_config(document, {}))
    manager = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    assert [f["name"] for f in manager["http_filters"]] == ["envoy.filters.http.router"]
    assert [c["name"] for c in bootstrap["static_resources"]["clusters"]] == ["llama"]


def test_real_envoy_accepts_both_rendered_configs_and_neither_holds_a_secret(
    dev_certs: Certs,  # noqa: F811
    tmp_path: Path,
) -> None:
    router = render_bootstrap_yaml(parse_config_text(router_yaml(dev_certs), ENV))
    gateway = render_gateway_bootstrap_yaml(parse_gateway_config(gateway_document(dev_certs), ENV))
    for name, text in (("router.yaml", router), ("gateway.yaml", gateway)):
        assert CLUSTER_SECRET not in text
        path = tmp_path / name
        path.write_text(text)
        result = subprocess.run(
            [str(envoy_binary()), "--mode", "validate", "-c", str(path)], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_cli_renders_the_gateway_and_requires_its_secret_to_serve(
    dev_certs: Certs,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CLUSTER_SECRET", CLUSTER_SECRET)
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump(gateway_document(dev_certs)))
    output = tmp_path / "envoy.yaml"
    assert main(["envoy-config", "--role", "cluster-gateway", "--config", str(config), "-o", str(output)]) == 0
    assert yaml.safe_load(output.read_text())["node"]["id"] == "llm-cluster-gateway"
    document = gateway_document(dev_certs)
    del document["sharedSecret"]
    config.write_text(yaml.safe_dump(document))
    assert main(["serve", "--role", "cluster-gateway", "--config", str(config)]) == 1
    assert "sharedSecret: is required to run the verifier" in capsys.readouterr().err
    assert main(["envoy-config", "--role", "cluster-gateway"]) == 1
    assert "--config: is required with --role cluster-gateway" in capsys.readouterr().err


def test_certs_command_writes_a_ca_and_leaves_it_signed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "certs"
    assert main(["certs", "--out", str(out), "--san", "router.internal"]) == 0
    assert len(capsys.readouterr().out.split()) == 10
    ca = x509.load_pem_x509_certificate((out / "ca.crt").read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    expected_usage = {
        "server": ExtendedKeyUsageOID.SERVER_AUTH,
        "cluster-server": ExtendedKeyUsageOID.SERVER_AUTH,
        "client": ExtendedKeyUsageOID.CLIENT_AUTH,
        "cluster-client": ExtendedKeyUsageOID.CLIENT_AUTH,
    }
    for stem, usage in expected_usage.items():
        cert = x509.load_pem_x509_certificate((out / f"{stem}.crt").read_bytes())
        cert.verify_directly_issued_by(ca)
        assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [usage]
        assert cert.not_valid_after_utc > datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=300)
        assert stat.S_IMODE(os.stat(out / f"{stem}.key").st_mode) == 0o600
        if usage == ExtendedKeyUsageOID.SERVER_AUTH:
            names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            assert names.get_values_for_type(x509.DNSName) == ["localhost", "router.internal"]
            assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    assert main(["certs", "--out", str(out)]) == 1, "existing files are not replaced without --force"
    assert "--force" in capsys.readouterr().err
    assert main(["certs", "--out", str(out), "--force"]) == 0
