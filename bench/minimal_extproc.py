"""The leanest useful Python ext_proc: the floor any Python controller on grpc.aio stands on (on uvloop, the
controller's own event loop, so that the comparison is of the work and not of the loop).

Two messages per request (Envoy configured with request headers SEND, request body BUFFERED, everything else
SKIP/NONE): an empty reply to the headers; for the body, parse the JSON, set the routing header (raw_value)
and the content-length, clear the route cache, and end the stream from the server side.

Run: python bench/minimal_extproc.py --port P --cluster target_bench-aws
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

import grpc
import orjson
import uvloop
from envoy.config.core.v3.base_pb2 import HeaderValue, HeaderValueOption
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from envoy.service.ext_proc.v3.external_processor_pb2_grpc import (
    ExternalProcessorServicer,
    add_ExternalProcessorServicer_to_server,
)

CLUSTER_HEADER = "x-llm-router-cluster"
OVERWRITE = HeaderValueOption.HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD
EMPTY_HEADERS_REPLY = ep.ProcessingResponse(request_headers=ep.HeadersResponse())


class MinimalProcessor(ExternalProcessorServicer):
    def __init__(self, cluster: str) -> None:
        self._cluster = cluster.encode()

    async def Process(
        self, request_iterator: AsyncIterator[ep.ProcessingRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[ep.ProcessingResponse]:
        async for message in request_iterator:
            phase = message.WhichOneof("request")
            if phase == "request_headers":
                yield EMPTY_HEADERS_REPLY
            elif phase == "request_body":
                body = message.request_body.body
                orjson.loads(body)  # what any router must do at least once
                yield self._route(len(body))
                return
            else:
                yield ep.ProcessingResponse()
                return

    def _route(self, length: int) -> ep.ProcessingResponse:
        headers = [
            HeaderValueOption(header=HeaderValue(key=CLUSTER_HEADER, raw_value=self._cluster), append_action=OVERWRITE),
            HeaderValueOption(
                header=HeaderValue(key="content-length", raw_value=str(length).encode()), append_action=OVERWRITE
            ),
        ]
        return ep.ProcessingResponse(
            request_body=ep.BodyResponse(
                response=ep.CommonResponse(
                    header_mutation=ep.HeaderMutation(set_headers=headers), clear_route_cache=True
                )
            )
        )


async def serve(host: str, port: int, cluster: str) -> None:
    server = grpc.aio.server(options=(("grpc.max_receive_message_length", 64 * 2**20),))
    add_ExternalProcessorServicer_to_server(MinimalProcessor(cluster), server)
    server.add_insecure_port(f"{host}:{port}")
    await server.start()
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cluster", required=True, help="Envoy cluster every request is routed to")
    args = parser.parse_args()
    uvloop.run(serve(args.host, args.port, args.cluster))  # the controller's event loop too


if __name__ == "__main__":
    main()
