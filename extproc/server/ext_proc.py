"""The ext_proc v3 gRPC service: one `Process` stream per HTTP request, ended by us after the last reply."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

import grpc
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from envoy.service.ext_proc.v3.external_processor_pb2_grpc import ExternalProcessorServicer

from extproc.server.exchange import Exchange
from extproc.server.runtime import Runtime

log = logging.getLogger(__name__)


class ExternalProcessor(ExternalProcessorServicer):
    def __init__(self, runtime: Callable[[], Runtime]) -> None:
        self._runtime = runtime

    async def Process(
        self, request_iterator: AsyncIterator[ep.ProcessingRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[ep.ProcessingResponse]:
        exchange = Exchange(self._runtime())
        async for message in request_iterator:
            yield exchange.handle(message)
            if exchange.finished:
                return
