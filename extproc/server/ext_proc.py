"""The ext_proc v3 gRPC service: one `Process` stream per HTTP request (or per attempt), ended by us after
the last reply. Envoy's two ext_proc filters tell which one is calling in the stream's initial metadata."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import grpc
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from envoy.service.ext_proc.v3.external_processor_pb2_grpc import ExternalProcessorServicer

from extproc.envoy_config.names import ATTEMPT_PHASE
from extproc.headers import PHASE_METADATA
from extproc.server.attempt_exchange import AttemptExchange
from extproc.server.route_exchange import RouteExchange
from extproc.server.runtime import Runtime


class ExternalProcessor(ExternalProcessorServicer):
    def __init__(self, runtime: Callable[[], Runtime]) -> None:
        self._runtime = runtime

    async def Process(
        self, request_iterator: AsyncIterator[ep.ProcessingRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[ep.ProcessingResponse]:
        is_attempt = any(
            key == PHASE_METADATA and value == ATTEMPT_PHASE for key, value in context.invocation_metadata() or ()
        )
        exchange = (AttemptExchange if is_attempt else RouteExchange)(self._runtime())
        try:
            async for message in request_iterator:
                yield exchange.handle(message)
                if exchange.finished:
                    return
        finally:
            exchange.close()
