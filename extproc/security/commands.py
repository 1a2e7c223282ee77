"""The security parts of the `llm-router` command line: `certs`, and `--role cluster-gateway`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from extproc.config.loader import ConfigError
from extproc.security.gateway_config import GatewayConfig, load_gateway_config

ROUTER_ROLE = "router"
GATEWAY_ROLE = "cluster-gateway"


def add_role_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--role",
        choices=(ROUTER_ROLE, GATEWAY_ROLE),
        default=ROUTER_ROLE,
        help="router (default), or cluster-gateway: the verifier in front of a cluster (its own --config format)",
    )


def add_certs_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    text = "Create a development CA and server, client and cluster certificates (PEM) with their keys."
    sub = commands.add_parser("certs", help=text, description=text)
    sub.add_argument("--out", type=Path, default=Path("certs"), help="directory to write into (default: certs)")
    sub.add_argument("--san", action="append", default=[], help="another DNS name or IP for the server certificates")
    sub.add_argument("--force", action="store_true", help="replace existing files")
    sub.set_defaults(run=_certs)


def gateway_server(config_path: Path | None) -> Callable[[asyncio.Event], Awaitable[None]]:
    """The verifier of `serve --role cluster-gateway`, its config loaded (and checked) up front."""
    from extproc.security.gateway import serve_forever

    config = _gateway_config(config_path)
    if not config.shared_secret:
        raise ConfigError(["sharedSecret: is required to run the verifier (without it, Envoy alone does mTLS)"])
    return lambda stop: serve_forever(config, stop)


def gateway_bootstrap_yaml(config_path: Path | None) -> str:
    from extproc.envoy_config.cluster_gateway import render_gateway_bootstrap_yaml

    return render_gateway_bootstrap_yaml(_gateway_config(config_path))


def _gateway_config(config_path: Path | None) -> GatewayConfig:
    if config_path is None:
        raise ConfigError([f"--config: is required with --role {GATEWAY_ROLE}"])
    return load_gateway_config(config_path)


def _certs(args: argparse.Namespace) -> int:
    from extproc.security.certs import write_dev_certs

    try:
        written = write_dev_certs(args.out, args.san, force=args.force)
    except FileExistsError as error:
        print(error, file=sys.stderr)
        return 1
    print("\n".join(str(p) for p in written))
    return 0
