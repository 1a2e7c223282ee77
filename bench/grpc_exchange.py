"""The exchange of `bench/exchange_cost.py` over real gRPC, in one process: a server on a loopback port (the
product's ext_proc, registered as the product registers it, or the minimal ext_proc), driven by a grpc.aio
client with the messages Envoy sends for the benchmark chat, and Envoy's access log entry where it sends one.

This adds the server's own side of the transport to the in-process measure: grpc.aio's server, its event
loop callbacks and tasks, (de)serialization. The client's share is the same whichever server answers, so the
difference between the two servers is theirs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import grpc
from envoy.data.accesslog.v3.accesslog_pb2 import HTTPAccessLogEntry
from envoy.service.ext_proc.v3.external_processor_pb2_grpc import (
    ExternalProcessorStub,
    add_ExternalProcessorServicer_to_server,
)

from bench.exchange_cost import ProductServicer, Script, learn_script
from bench.minimal_extproc import MinimalProcessor
from bench.systems import BASELINE_CLUSTER, router_document

SERVERS = ("controller", "minimal")


@dataclass(frozen=True, slots=True)
class Served:
    server: grpc.aio.Server
    script: Script
    log_sink: Callable[[HTTPAccessLogEntry], None] | None


async def serve(which: str) -> tuple[Served, int]:
    """`which` ("controller" or "minimal") serving on a free loopback port, and that port."""
    from extproc.server.app import GRPC_OPTIONS
    from extproc.server.memory import add_ext_proc_servicer

    product = ProductServicer.of(router_document("http://127.0.0.1:9"))
    script = await learn_script(product.factory(), product.bootstrap)
    server = grpc.aio.server(options=GRPC_OPTIONS)
    if which == "controller":
        add_ext_proc_servicer(product.factory(), server)
        served = Served(server, script, product.log_sink)
    else:
        add_ExternalProcessorServicer_to_server(MinimalProcessor(BASELINE_CLUSTER), server)
        served = Served(server, Script(script.streams[:1]), None)  # the router's two messages, no log
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return served, port


async def replay(served: Served, port: int, repeats: int) -> None:
    """Each stream of the script as Envoy runs it: every message written after the previous one's reply."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = ExternalProcessorStub(channel)
        for _ in range(repeats):
            for metadata, messages in served.script.streams:
                call = stub.Process(metadata=metadata)
                for message in messages:
                    await call.write(message)
                    await call.read()
                if (status := await call.code()) != grpc.StatusCode.OK:
                    raise RuntimeError(f"the server ended an ext_proc stream with {status}")
            if served.log_sink is not None and served.script.logged is not None:
                served.log_sink(served.script.logged)
