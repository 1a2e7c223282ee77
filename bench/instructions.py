"""The controller's own work per request in instructions (callgrind), not seconds.

An instruction count is the same for the same code and inputs whatever else the machine is doing, so the
in-process cost of `bench/exchange_cost.py` compares across runs, machines and trees, where its µs figure
moves with this VM's speed. `python -m bench.instructions --replay N` replays the benchmark chat's exchange N
times in one process (after a warm-up); `instructions_per_request` runs that under valgrind for two values of
N and divides the difference, which leaves start-up, imports and warm-up out. The figure includes the
in-process driver (a few per cent of it). `python -m bench.instructions` prints it (about a minute).

`--over-grpc` counts the same exchange over real gRPC instead (`bench/grpc_exchange.py`: client and server in
one process), for the product's server and for the minimal ext_proc's: their difference is what the
controller's server costs beyond the floor, its side of the transport included (about three minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
from pathlib import Path

import uvloop

from bench.grpc_exchange import SERVERS

REPO_ROOT = Path(__file__).resolve().parent.parent
WARM_UP = 200
_COLLECTED = re.compile(r"Collected : (\d+)")


def collected(valgrind_stderr: str) -> int:
    """The total instruction count callgrind prints when the program ends."""
    found = _COLLECTED.search(valgrind_stderr)
    if found is None:
        raise ValueError(f"no instruction count in valgrind's output: {valgrind_stderr[-500:]!r}")
    return int(found.group(1))


def _count(valgrind: str, replay: list[str], timeout: float) -> int:
    command = [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable]
    command += ["-m", "bench.instructions", *replay]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"valgrind exited with {done.returncode}: {done.stderr[-500:]}")
    return collected(done.stderr)


def instructions_per_request(
    valgrind: str, low: int = 300, high: int = 1300, timeout: float = 600.0, over_grpc: str | None = None
) -> float:
    """Instructions of the controller's in-process work per request (`valgrind`: the binary's path), or with
    `over_grpc` ("controller" or "minimal"), of that server's exchange over gRPC with its client."""
    mode = ["--server", over_grpc] if over_grpc else []
    high_count = _count(valgrind, [*mode, "--replay", str(high)], timeout)
    return (high_count - _count(valgrind, [*mode, "--replay", str(low)], timeout)) / (high - low)


def _replay_over_grpc(server: str, replays: int) -> None:
    from bench.exchange_cost import stdout_discarded
    from bench.grpc_exchange import replay, serve

    async def run() -> None:
        served, port = await serve(server)
        await replay(served, port, WARM_UP)
        await replay(served, port, replays)
        await served.server.stop(None)

    with stdout_discarded():
        uvloop.run(run())


def _replay(replays: int) -> None:
    from bench.exchange_cost import ProductServicer, learn_script, replay, stdout_discarded
    from bench.systems import router_document

    product = ProductServicer.of(router_document("http://127.0.0.1:9"))

    async def run() -> None:
        servicer = product.factory()
        script = await learn_script(servicer, product.bootstrap)
        await replay(servicer, script, WARM_UP, product.log_sink)
        await replay(servicer, script, replays, product.log_sink)

    with stdout_discarded():
        asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--over-grpc", action="store_true", help="count both servers' exchanges over gRPC")
    parser.add_argument("--replay", type=int, help=argparse.SUPPRESS)  # the child valgrind runs...
    parser.add_argument("--server", choices=SERVERS, help=argparse.SUPPRESS)  # ...over gRPC, with this server
    args = parser.parse_args()
    if args.replay is not None and args.server:
        _replay_over_grpc(args.server, args.replay)
        return
    if args.replay is not None:
        _replay(args.replay)
        return
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        sys.exit("valgrind is not installed (apt-get install valgrind)")
    if not args.over_grpc:
        print(f"{instructions_per_request(valgrind):,.0f} instructions per request")
        return
    counts = {server: instructions_per_request(valgrind, 200, 600, over_grpc=server) for server in SERVERS}
    for server, count in counts.items():
        print(f"{server}: {count:,.0f} instructions per request over gRPC (client and server)")
    print(f"the controller beyond the minimal: {counts['controller'] - counts['minimal']:,.0f}")


if __name__ == "__main__":
    main()
