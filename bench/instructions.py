"""The controller's own work per request in instructions (callgrind), not seconds.

An instruction count is the same for the same code and inputs whatever else the machine is doing, so the
in-process cost of `bench/exchange_cost.py` compares across runs, machines and trees, where its µs figure
moves with this VM's speed. `python -m bench.instructions --replay N` replays the benchmark chat's exchange N
times in one process (after a warm-up); `instructions_per_request` runs that under valgrind for two values of
N and divides the difference, which leaves start-up, imports and warm-up out. The figure includes the
in-process driver (a few per cent of it). `python -m bench.instructions` prints it (about a minute).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
WARM_UP = 200
_COLLECTED = re.compile(r"Collected : (\d+)")


def collected(valgrind_stderr: str) -> int:
    """The total instruction count callgrind prints when the program ends."""
    found = _COLLECTED.search(valgrind_stderr)
    if found is None:
        raise ValueError(f"no instruction count in valgrind's output: {valgrind_stderr[-500:]!r}")
    return int(found.group(1))


def _count(valgrind: str, replays: int, timeout: float) -> int:
    command = [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable]
    command += ["-m", "bench.instructions", "--replay", str(replays)]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"valgrind exited with {done.returncode}: {done.stderr[-500:]}")
    return collected(done.stderr)


def instructions_per_request(valgrind: str, low: int = 300, high: int = 1300, timeout: float = 600.0) -> float:
    """Instructions of the controller's in-process work per request (`valgrind`: the binary's path)."""
    return (_count(valgrind, high, timeout) - _count(valgrind, low, timeout)) / (high - low)


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
    if sys.argv[1:2] == ["--replay"]:
        _replay(int(sys.argv[2]))
        return
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        sys.exit("valgrind is not installed (apt-get install valgrind)")
    print(f"{instructions_per_request(valgrind):,.0f} instructions per request")


if __name__ == "__main__":
    main()
