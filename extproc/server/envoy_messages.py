"""Builders for Envoy ext_proc v3 replies (messages from the `xds-protos` registry package).

Header values always go in `raw_value`: Envoy ignores `value` in ext_proc mutations.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from envoy.config.core.v3.base_pb2 import HeaderValueOption
from envoy.extensions.filters.http.ext_proc.v3.processing_mode_pb2 import ProcessingMode
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from envoy.type.v3.http_status_pb2 import HttpStatus
from google.protobuf.struct_pb2 import Struct

from extproc.envoy_config.names import DECISION_NAMESPACE

OVERWRITE = HeaderValueOption.HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD
BUFFERED = ProcessingMode.BodySendMode.BUFFERED
STREAMED = ProcessingMode.BodySendMode.STREAMED

EMPTY_REQUEST_HEADERS_REPLY = ep.ProcessingResponse(request_headers=ep.HeadersResponse())
EMPTY_RESPONSE_BODY_REPLY = ep.ProcessingResponse(response_body=ep.BodyResponse())


def header_map(headers: ep.HttpHeaders) -> dict[str, str]:
    """Lower-case name -> value of the headers Envoy sent."""
    return {h.key: h.raw_value.decode("latin-1") if h.raw_value else h.value for h in headers.headers.headers}


def mutation(set_headers: Iterable[tuple[str, str]] = (), remove: Iterable[str] = ()) -> ep.HeaderMutation:
    built = ep.HeaderMutation()
    fill_mutation(built, set_headers, remove)
    return built


def fill_mutation(
    mutation: ep.HeaderMutation, set_headers: Iterable[tuple[str, str]], remove: Iterable[str] = ()
) -> None:
    """Fill a mutation in place (a message built apart and then assigned is copied: twice the work)."""
    add = mutation.set_headers.add
    for key, value in set_headers:
        header = add(append_action=OVERWRITE).header
        header.key = key
        header.raw_value = value.encode("latin-1")
    mutation.remove_headers.extend(remove)


def request_body_reply(
    set_headers: Iterable[tuple[str, str]], remove: Iterable[str], body: bytes | None
) -> ep.ProcessingResponse:
    """A reply to the request body: header changes and, if given, the new body (filled in place)."""
    reply = ep.ProcessingResponse()
    common = reply.request_body.response
    fill_mutation(common.header_mutation, set_headers, remove)
    if body is not None:
        common.body_mutation.body = body
    return reply


def changes(set_headers: Iterable[tuple[str, str]], present: Mapping[str, str]) -> list[tuple[str, str]]:
    """The headers to set that the request does not already carry with that value (content-length always: a
    replaced body needs it restated)."""
    return [(key, value) for key, value in set_headers if key == "content-length" or present.get(key) != value]


def removals(names: Iterable[str], present: Mapping[str, str]) -> list[str]:
    """Those of `names` the request carries: removing an absent header is work for nothing, twice."""
    return [name for name in names if name in present]


def immediate(
    status: int, body: bytes, headers: Iterable[tuple[str, str]] = (), details: str = ""
) -> ep.ProcessingResponse:
    """Answer the client directly (the request never reaches a target)."""
    return ep.ProcessingResponse(
        immediate_response=ep.ImmediateResponse(
            status=HttpStatus(code=status),
            headers=mutation([("content-type", "application/json"), *headers]),
            body=body,
            details=details,
        )
    )


def fill_decision_metadata(metadata: Struct, values: dict[str, str | bool]) -> None:
    """The decision as dynamic metadata (in place): it stays inside Envoy, the same for every attempt of the
    request."""
    fields = metadata.fields[DECISION_NAMESPACE].struct_value.fields  # Struct.update is pure Python
    for key, value in values.items():
        if isinstance(value, bool):
            fields[key].bool_value = value
        else:
            fields[key].string_value = value


def decision_from_metadata(message: ep.ProcessingRequest) -> str | None:
    return decision_in(message.metadata_context.filter_metadata)


def decision_in(filter_metadata: Mapping[str, Struct]) -> str | None:
    """The encoded decision in Envoy dynamic metadata (an ext_proc message's, or an access log entry's)."""
    namespace = filter_metadata.get(DECISION_NAMESPACE)
    value = namespace.fields.get("decision") if namespace is not None else None
    return value.string_value if value is not None else None
