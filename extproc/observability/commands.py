"""`llm-router explain`: the decision for a request body, without calling any target."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import orjson

from extproc.config.default import default_config
from extproc.config.loader import load_config
from extproc.observability.explain import explain_with_config
from extproc.routing.request import BadRequest

NO_TARGET_EXIT = 3


def add_explain_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    text = (
        "Explain the routing decision for a chat-completions request body: every candidate, its estimate, and why "
        f"it won or lost. No completion is sent; clusters are polled once for their status. Exit {NO_TARGET_EXIT} "
        "when no target can take the request."
    )
    sub = commands.add_parser("explain", help=text, description=text)
    sub.add_argument("--config", "-c", type=Path, help="router YAML file (default: the embedded default)")
    sub.add_argument("request", help="the request body: a JSON file, or - for standard input")
    sub.add_argument("--strategy", help="as the x-llm-router-strategy header would (default: the configured one)")
    sub.add_argument("--no-poll", action="store_true", help="do not poll the clusters: assume them ready")
    sub.set_defaults(run=_explain)


def _explain(args: argparse.Namespace) -> int:
    config = load_config(args.config) if args.config else default_config()
    try:
        body = sys.stdin.buffer.read() if args.request == "-" else Path(args.request).read_bytes()
    except OSError as error:
        print(f"explain: cannot read {args.request} ({error.strerror})", file=sys.stderr)
        return 2
    try:
        result = asyncio.run(explain_with_config(config, body, args.strategy, poll=not args.no_poll))
    except BadRequest as error:
        print(f"explain: {error.message}", file=sys.stderr)
        return 2
    sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0 if result["target"] else NO_TARGET_EXIT
