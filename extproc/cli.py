"""`llm-router` command line: up, serve, envoy-config, validate, calibrate, certs, hash-key, explain."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import uvloop

from extproc.auth.commands import add_hash_key_command
from extproc.config.default import default_config
from extproc.config.loader import ConfigError, load_config
from extproc.config.model import Config
from extproc.observability.commands import add_explain_command
from extproc.security.commands import (
    GATEWAY_ROLE,
    add_certs_command,
    add_role_option,
    gateway_bootstrap_yaml,
    gateway_server,
)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.run(args)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llm-router", description=__doc__)
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(
        name: str, run: Callable[[argparse.Namespace], int], help_text: str, config_required: bool = False
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument(
            "--config",
            "-c",
            type=Path,
            required=config_required,
            help="router YAML file" + ("" if config_required else " (default: the embedded default)"),
        )
        sub.set_defaults(run=run)
        return sub

    command("up", _up, "Run the local stack in the foreground: llama.cpp cluster(s), the controller and Envoy.")
    serve = command(
        "serve",
        _serve,
        "Run the controller alone (ext_proc gRPC + admin HTTP), e.g. as an Envoy sidecar.",
        config_required=True,
    )
    serve.add_argument(
        "--replica",
        type=int,
        default=0,
        help="serve on the ports of server.replicas[N-1] (0: the main grpcPort/httpPort)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="controller processes sharing the ports (SO_REUSEPORT), e.g. one per core",
    )
    add_role_option(serve)
    calibrate = commands.add_parser(
        "calibrate",
        help="Find the complexityThreshold that sends a given share of prompts to the premium tier.",
        description="Find the complexityThreshold that sends a given share of prompts to the premium tier.",
    )
    calibrate.add_argument("--prompts", type=Path, required=True, help="JSONL: one {prompt|messages} per line")
    calibrate.add_argument("--premium-share", type=float, required=True, help="e.g. 0.2 for 20%%")
    calibrate.add_argument("--cheap-price", type=float, help="$/1K tokens of the cheap tier (for the cost split)")
    calibrate.add_argument("--premium-price", type=float, help="$/1K tokens of the premium tier")
    calibrate.set_defaults(run=_calibrate)
    render = command("envoy-config", _envoy_config, "Render the Envoy bootstrap for a config.")
    render.add_argument("-o", "--output", type=Path, help="write here instead of standard output")
    add_role_option(render)
    command(
        "validate",
        _validate,
        "Check a config and report every problem with its key path.",
        config_required=True,
    )
    add_certs_command(commands)
    add_hash_key_command(commands)
    add_explain_command(commands)
    return parser


def _config(args: argparse.Namespace) -> Config:
    return load_config(args.config) if args.config else default_config()


def _validate(args: argparse.Namespace) -> int:
    config = _config(args)
    print(
        f"{args.config}: OK ({len(config.clusters)} clusters, {len(config.enabled_providers)} enabled "
        f"providers, strategy {config.router.routing_strategy})"
    )
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from extproc.routing.calibrate import run_calibration

    try:
        print(run_calibration(args.prompts, args.premium_share, args.cheap_price, args.premium_price))
    except (OSError, ValueError) as error:
        print(f"calibrate: {error}", file=sys.stderr)
        return 2
    return 0


def _envoy_config(args: argparse.Namespace) -> int:
    from extproc.envoy_config.bootstrap import render_bootstrap_yaml

    text = gateway_bootstrap_yaml(args.config) if args.role == GATEWAY_ROLE else render_bootstrap_yaml(_config(args))
    if args.output:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from extproc.server.app import serve_forever

    if args.role == GATEWAY_ROLE:
        return _run_until_signalled(gateway_server(args.config))
    config = _config(args)
    if not 0 <= args.replica <= len(config.server.replicas):
        print(f"--replica {args.replica}: the config has {len(config.server.replicas)} extra replicas", file=sys.stderr)
        return 2
    if args.workers < 1:
        print(f"--workers {args.workers}: at least 1", file=sys.stderr)
        return 2
    if args.workers > 1:
        from extproc.server.workers import serve_workers

        return serve_workers(args.workers, _without_option(sys.argv[1:], "--workers"))
    return _run_until_signalled(lambda stop: serve_forever(config, stop, args.replica, args.config))


def _without_option(argv: list[str], option: str) -> list[str]:
    """`argv` without `option` and its value (`--opt V` or `--opt=V`)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == option:
            skip = True
        elif not arg.startswith(option + "="):
            out.append(arg)
    return out


def _up(args: argparse.Namespace) -> int:
    from extproc.local.stack import LocalStack

    config = _config(args)

    async def run(stop: asyncio.Event) -> None:
        workdir = Path(tempfile.mkdtemp(prefix="llm-router-"))
        progress = lambda line: print(f"  .. {line}", flush=True)  # noqa: E731
        async with LocalStack(config, workdir, progress=progress, config_path=args.config) as stack:
            _print_ready(stack.url, config, workdir)
            await stop.wait()
            print("\nstopping ...", flush=True)

    return _run_until_signalled(run)


def _print_ready(url: str, config: Config, workdir: Path) -> None:
    targets = [c.name for c in config.clusters] + [p.name for p in config.enabled_providers]
    print(
        f"""
llm-router is up on {url}  (targets: {", ".join(targets)}; strategy {config.router.routing_strategy})

  curl -s {url}/v1/chat/completions -H 'content-type: application/json' \\
    -d '{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"Hi"}}],"max_tokens":10}}'

  health  {url}/health     metrics  {url}/metrics     logs  {workdir}
Press Ctrl-C to stop.""",
        flush=True,
    )


def _run_until_signalled(main_task: Callable[[asyncio.Event], object]) -> int:
    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main_task(stop)  # type: ignore[misc]

    uvloop.run(runner())  # libuv's loop: less of the per-message event-loop cost every ext_proc stream pays
    return 0


if __name__ == "__main__":
    sys.exit(main())
