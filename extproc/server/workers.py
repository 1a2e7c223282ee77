"""Several controller processes on one port, for machines with more cores: `llm-router serve --workers N`.

Every worker is a whole controller (`llm-router serve` on the same config) bound to the same gRPC and admin
ports with SO_REUSEPORT: the kernel spreads Envoy's connections over them. Each Envoy worker thread keeps one
HTTP/2 connection to the controller, carrying both its ext_proc streams and its access log stream, so a
prepared request's log entry reaches the worker that prepared it. Prometheus counters are shared through
prometheus_client's multiprocess directory: any worker's /metrics shows the sum.

The supervisor forwards SIGTERM/SIGINT (each worker drains) and SIGHUP (reload), and starts a worker again if
one dies on its own.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from extproc.metrics import MULTIPROCESS_DIR_ENV

log = logging.getLogger(__name__)

WORKER_ENV = "LLM_ROUTER_WORKER"  # set in each worker: its number (it then shares its ports)
RESTART_PAUSE_SECONDS = 1.0


def is_worker() -> bool:
    return WORKER_ENV in os.environ


class Supervisor:
    def __init__(self, command: list[str], workers: int) -> None:
        self._command = command
        self._count = workers
        self._workers: dict[int, subprocess.Popen[bytes]] = {}
        self._stopping = False
        self._metrics_dir = Path(tempfile.mkdtemp(prefix="llm-router-metrics-"))

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._forward)
        try:
            for number in range(self._count):
                self._start(number)
            return self._watch()
        finally:
            shutil.rmtree(self._metrics_dir, ignore_errors=True)

    def _start(self, number: int) -> None:
        env = {**os.environ, WORKER_ENV: str(number), MULTIPROCESS_DIR_ENV: str(self._metrics_dir)}
        self._workers[number] = subprocess.Popen(self._command, env=env)
        log.info("worker %d started (pid %d)", number, self._workers[number].pid)

    def _watch(self) -> int:
        status = 0
        while self._workers:
            pid, code = os.wait()
            number = next((n for n, p in self._workers.items() if p.pid == pid), None)
            if number is None:
                continue
            self._workers.pop(number).returncode = os.waitstatus_to_exitcode(code)
            if self._stopping:
                continue
            status = 1
            log.error("worker %d (pid %d) ended on its own (status %d): starting it again", number, pid, code)
            time.sleep(RESTART_PAUSE_SECONDS)
            self._start(number)
        return 0 if self._stopping else status

    def _forward(self, signum: int, _frame: object) -> None:
        if signum != signal.SIGHUP:
            self._stopping = True
        for worker in self._workers.values():
            worker.send_signal(signum)


def serve_workers(workers: int, argv: list[str]) -> int:
    """Run `workers` copies of `llm-router <argv>` (a serve command without --workers) under a supervisor."""
    return Supervisor([sys.executable, "-m", "extproc.cli", *argv], workers).run()
