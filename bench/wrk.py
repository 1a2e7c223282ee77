"""wrk as the load generator: a Lua script for POST bodies that prints its results as one JSON line.

wrk measures each request from write to full response on keep-alive connections (closed loop, no
coordinated-omission correction): at concurrency c it keeps c requests in flight at all times.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

RESULT_MARKER = "WRK_JSON "

# `done` runs once after all threads finish; latency values are microseconds.
_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d,"mean_us":%.1f,"max_us":%.0f,' ..
    '"p50_us":%.0f,"p90_us":%.0f,"p99_us":%.0f,"p999_us":%.0f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9)))
end
"""


def lua_long_string(text: str) -> str:
    """`text` as a Lua long-bracket literal whose level no `]=...=]` inside the text can close."""
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    eq = "=" * level
    return f"[{eq}[{text}]{eq}]"


def lua_script(body_file: Path, headers: dict[str, str]) -> str:
    """A wrk script that POSTs the bytes of `body_file` with `headers` and prints a WRK_JSON result line."""
    lines = [
        'wrk.method = "POST"',
        f'local f = assert(io.open({lua_long_string(str(body_file))}, "rb"))',
        "wrk.body = f:read('*a')",
        "f:close()",
    ]
    lines += [f"wrk.headers[ {lua_long_string(k)} ] = {lua_long_string(v)}" for k, v in headers.items()]
    return "\n".join(lines) + "\n" + _DONE


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    duration_s: float
    errors: int  # socket errors (connect, read, write, timeout) plus non-2xx/3xx responses
    status_errors: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0


def parse_wrk_output(text: str) -> WrkResult:
    """The result line our Lua `done` prints; raises ValueError (with the output) when it is missing."""
    for line in text.splitlines():
        if line.startswith(RESULT_MARKER):
            data = json.loads(line[len(RESULT_MARKER) :])
            break
    else:
        raise ValueError(f"no {RESULT_MARKER.strip()} line in wrk output:\n{text[-2000:]}")
    socket_errors = sum(data[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts"))
    return WrkResult(
        requests=int(data["requests"]),
        duration_s=data["duration_us"] / 1e6,
        errors=int(socket_errors + data["status_errors"]),
        status_errors=int(data["status_errors"]),
        mean_ms=data["mean_us"] / 1000,
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        p999_ms=data["p999_us"] / 1000,
        max_ms=data["max_us"] / 1000,
    )


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if not found:
        raise FileNotFoundError("wrk not found: apt-get install wrk")
    return found


def wrk_command(url: str, script: Path, connections: int, duration_s: float, threads: int = 1) -> list[str]:
    """One wrk thread by default: on a small machine the load generator should take one core at most."""
    return [
        wrk_binary(),
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{max(round(duration_s), 1)}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]


def run_wrk(
    url: str, script: Path, connections: int, duration_s: float, threads: int = 1, hard_timeout: float | None = None
) -> WrkResult:
    """Run wrk to completion (killed after `hard_timeout` seconds, default duration + 30 s)."""
    command = wrk_command(url, script, connections, duration_s, threads)
    done = subprocess.run(command, capture_output=True, text=True, timeout=hard_timeout or duration_s + 30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk exited with {done.returncode}: {done.stderr or done.stdout}")
    return parse_wrk_output(done.stdout)


def start_wrk(url: str, script: Path, connections: int, duration_s: float, threads: int = 1) -> subprocess.Popen[str]:
    """wrk in the background, for runs that end on a condition (then `finish_wrk(..., interrupt=True)`)."""
    return subprocess.Popen(
        wrk_command(url, script, connections, duration_s, threads),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish_wrk(process: subprocess.Popen[str], interrupt: bool = False, timeout: float = 60) -> WrkResult:
    """SIGINT makes wrk stop early and still print its summary (and our Lua `done` line)."""
    if interrupt and process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    if process.returncode != 0:
        raise RuntimeError(f"wrk exited with {process.returncode}: {err or out}")
    return parse_wrk_output(out)
