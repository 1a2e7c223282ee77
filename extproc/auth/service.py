"""Envoy's ext_authz v3 gRPC service (`Authorization/Check`), one unary call per request on its headers.

Allowed: the client's key headers are removed, the key's default strategy is set if need be, and the grant
(tenant, allowed models) goes back as dynamic metadata. Denied: an OpenAI-shaped JSON error.
Header mutations here use `value`: ext_authz ignores `raw_value`.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc
from envoy.config.core.v3.base_pb2 import HeaderValue, HeaderValueOption
from envoy.service.auth.v3 import external_auth_pb2 as auth
from envoy.service.auth.v3.external_auth_pb2_grpc import AuthorizationServicer
from envoy.type.v3.http_status_pb2 import HttpStatus
from google.rpc import code_pb2, status_pb2

from extproc.auth.gate import KEY_HEADERS, Admission, Denial
from extproc.auth.grant import grant_metadata
from extproc.headers import STRATEGY_HEADER
from extproc.providers.errors import openai_error
from extproc.server.runtime import Runtime

_OVERWRITE = HeaderValueOption.HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD
_RPC_CODES = {401: code_pb2.UNAUTHENTICATED, 403: code_pb2.PERMISSION_DENIED, 429: code_pb2.RESOURCE_EXHAUSTED}


class Authorization(AuthorizationServicer):
    def __init__(self, runtime: Callable[[], Runtime]) -> None:
        self._runtime = runtime

    async def Check(self, request: auth.CheckRequest, context: grpc.aio.ServicerContext) -> auth.CheckResponse:
        gate = self._runtime().gate
        if not gate.enabled:
            return auth.CheckResponse(status=status_pb2.Status(code=code_pb2.OK))
        verdict = await gate.admit(request.attributes.request.http.headers)
        return _denied(verdict) if isinstance(verdict, Denial) else _allowed(verdict)


def _allowed(admission: Admission) -> auth.CheckResponse:
    headers = [_header(STRATEGY_HEADER, admission.strategy)] if admission.strategy else []
    return auth.CheckResponse(
        status=status_pb2.Status(code=code_pb2.OK),
        ok_response=auth.OkHttpResponse(headers=headers, headers_to_remove=list(KEY_HEADERS)),
        dynamic_metadata=grant_metadata(admission.key),
    )


def _denied(denial: Denial) -> auth.CheckResponse:
    headers = [_header("content-type", "application/json")]
    if denial.status == 401:
        headers.append(_header("www-authenticate", "Bearer"))
    if denial.retry_after is not None:
        headers.append(_header("retry-after", str(denial.retry_after)))
    body = openai_error(denial.status, denial.message, type=denial.type, code=denial.code)
    return auth.CheckResponse(
        status=status_pb2.Status(code=_RPC_CODES.get(denial.status, code_pb2.UNAVAILABLE)),
        denied_response=auth.DeniedHttpResponse(status=HttpStatus(code=denial.status), headers=headers, body=body),
    )


def _header(name: str, value: str) -> HeaderValueOption:
    return HeaderValueOption(header=HeaderValue(key=name, value=value), append_action=_OVERWRITE)
