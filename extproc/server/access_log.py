"""Envoy's gRPC access log service: how the first attempts the router's ext_proc prepared ended.

Envoy logs only those requests (an access-log filter on the decision's `prepared` flag), batched on one
long-lived stream per Envoy worker, so a prepared request costs the controller one small entry and no
second gRPC exchange. Each entry carries the response status, how many attempts Envoy made, the decision
(dynamic metadata) and the usage Envoy's `json_to_metadata` filter read from the response body.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping

import grpc
from envoy.data.accesslog.v3.accesslog_pb2 import HTTPAccessLogEntry
from envoy.service.accesslog.v3 import als_pb2
from envoy.service.accesslog.v3.als_pb2_grpc import AccessLogServiceServicer
from google.protobuf.struct_pb2 import Struct

from extproc.auth.grant import grant_in
from extproc.envoy_config.names import USAGE_NAMESPACE
from extproc.providers.base import Usage
from extproc.server.attempt_exchange import AttemptExchange
from extproc.server.carried_decision import decode_decision
from extproc.server.envoy_messages import decision_in
from extproc.server.runtime import Runtime


class AccessLog(AccessLogServiceServicer):
    def __init__(self, runtime: Callable[[], Runtime]) -> None:
        self._runtime = runtime

    async def StreamAccessLogs(
        self, request_iterator: AsyncIterator[als_pb2.StreamAccessLogsMessage], context: grpc.aio.ServicerContext
    ) -> als_pb2.StreamAccessLogsResponse:
        async for message in request_iterator:
            runtime = self._runtime()
            for entry in message.http_logs.log_entry:
                finish_prepared(runtime, entry)
        return als_pb2.StreamAccessLogsResponse()


def finish_prepared(runtime: Runtime, entry: HTTPAccessLogEntry) -> None:
    """Account for the prepared first attempt of a logged request."""
    common = entry.common_properties
    metadata = common.metadata.filter_metadata
    request_id = entry.request.request_id
    attempt = runtime.prepared.take(request_id) or _known_from_log(runtime, request_id, metadata)
    if attempt is None:
        return
    if common.upstream_request_attempt_count > 1:
        attempt.superseded()
        return
    attempt.logged(entry.response.response_code.value, usage_in(metadata))


def usage_in(metadata: Mapping[str, Struct]) -> Usage | None:
    namespace = metadata.get(USAGE_NAMESPACE)
    if namespace is None:
        return None
    fields = namespace.fields
    prompt, completion = fields.get("prompt_tokens"), fields.get("completion_tokens")
    if prompt is None or completion is None:
        return None
    return Usage(int(prompt.number_value), int(completion.number_value))


def _known_from_log(runtime: Runtime, request_id: str, metadata: Mapping[str, Struct]) -> AttemptExchange | None:
    """A prepared attempt this controller does not hold (it restarted meanwhile): account for it all the same."""
    decision = decode_decision(decision_in(metadata))
    target = runtime.router.by_name.get(decision.chain[0]) if decision is not None and decision.chain else None
    if decision is None or target is None:
        return None
    return AttemptExchange.first(runtime, target, decision, request_id, grant_in(metadata).tenant)
