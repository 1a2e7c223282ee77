"""The local stack: llama.cpp servers for clusters that ask to be launched, the controller, and Envoy."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from extproc.config.model import ClusterConfig, Config
from extproc.envoy_config.bootstrap import render_bootstrap_yaml
from extproc.local.envoy_process import EnvoyProcess
from extproc.local.llama_server import LlamaServer
from extproc.local.process import ManagedProcess
from extproc.local.tiny_model import TinyModelSpec, ensure_model
from extproc.server.app import Controller

Progress = Callable[[str], None]


def model_spec(cluster: ClusterConfig) -> TinyModelSpec:
    assert cluster.launch is not None
    launch = cluster.launch
    return TinyModelSpec(
        name=cluster.model,
        n_layers=launch.n_layers,
        n_embd=launch.n_embd,
        n_head=max(launch.n_embd // 16, 1),
        n_ff=launch.n_embd * 2,
        context_length=cluster.context_window * launch.parallel,
    )


class LocalStack:
    def __init__(
        self, config: Config, workdir: Path, progress: Progress = lambda _: None, config_path: Path | None = None
    ) -> None:
        if config.server.replicas and config_path is None:
            raise ValueError("controller replicas need the config as a file (--config)")
        self.config = config
        self.config_path = config_path
        self.replicas = [
            ManagedProcess(f"controller replica {i}", workdir / f"controller-{i}.log")
            for i in range(1, len(config.server.replicas) + 1)
        ]
        self.workdir = workdir
        self.progress = progress
        self.llama: dict[str, LlamaServer] = {}
        self.controller = Controller(config, config_path=config_path)
        self.envoy = EnvoyProcess(
            workdir / "envoy.yaml",
            config.server.envoy_admin_port,
            workdir / "envoy.log",
            log_level=os.environ.get("LLM_ROUTER_ENVOY_LOG_LEVEL", "warning"),
        )

    @property
    def url(self) -> str:
        scheme = "https" if self.config.server.tls else "http"
        return f"{scheme}://127.0.0.1:{self.config.server.port}"

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        launched = [c for c in self.config.clusters if c.launch is not None]
        for cluster in launched:
            self.llama[cluster.name] = await asyncio.to_thread(self._llama_server, cluster)
        for name, server in self.llama.items():
            self.progress(f"starting llama.cpp cluster {name} on {server.base_url}")
            server.start()
        await asyncio.gather(*(s.wait_ready() for s in self.llama.values()))
        self.progress("starting the controller (ext_proc gRPC + admin HTTP)")
        await self.controller.start()
        await self._start_replicas()
        self.envoy.bootstrap.write_text(render_bootstrap_yaml(self.config))
        self.progress(f"starting Envoy on port {self.config.server.port}")
        self.envoy.start()
        await self.envoy.wait_ready()
        await self.controller.wait_clusters_polled()

    async def _start_replicas(self) -> None:
        host = self.config.server.controller_host
        for number, (process, (_, http_port)) in enumerate(
            zip(self.replicas, self.config.server.replicas, strict=True), start=1
        ):
            self.progress(f"starting controller replica {number}")
            process.launch(
                [
                    sys.executable,
                    "-m",
                    "extproc.cli",
                    "serve",
                    "--config",
                    str(self.config_path),
                    "--replica",
                    str(number),
                ]
            )
            await process.wait_http_ready(f"http://{host}:{http_port}/livez", timeout=30)

    def _llama_server(self, cluster: ClusterConfig) -> LlamaServer:
        assert cluster.launch is not None
        spec = model_spec(cluster)
        model = ensure_model(spec, progress=self.progress)
        return LlamaServer(
            model,
            cluster.endpoint.port,
            alias=cluster.model,
            parallel=cluster.launch.parallel,
            ctx_size=spec.context_length,
            host=cluster.endpoint.host,
            log_path=self.workdir / f"llama-{cluster.name}.log",
        )

    async def stop(self) -> None:
        self.envoy.stop()
        for process in self.replicas:
            process.stop()
        await self.controller.stop()
        await asyncio.gather(*(asyncio.to_thread(s.stop) for s in self.llama.values()))

    async def __aenter__(self) -> LocalStack:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
