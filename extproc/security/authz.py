"""The cluster gateway's ext_authz v3 service: Envoy asks, per request, whether the router's signature holds.

Envoy sends the whole body (`with_request_body`, packed as bytes). A verified request goes on without its
signature headers; any other gets an OpenAI-shaped error. ext_authz reads header `value`, not `raw_value`.
"""

from __future__ import annotations

import logging

import grpc
from envoy.config.core.v3.base_pb2 import HeaderValue, HeaderValueOption
from envoy.service.auth.v3 import external_auth_pb2 as authz
from envoy.service.auth.v3.external_auth_pb2_grpc import AuthorizationServicer
from envoy.type.v3.http_status_pb2 import HttpStatus
from google.rpc import code_pb2, status_pb2
from prometheus_client import Counter

from extproc.providers.errors import openai_error
from extproc.security.signing import SIGNATURE_HEADERS
from extproc.security.verifier import HmacVerifier, Rejection

log = logging.getLogger(__name__)

ALLOWED = authz.CheckResponse(
    status=status_pb2.Status(code=code_pb2.OK),
    ok_response=authz.OkHttpResponse(headers_to_remove=list(SIGNATURE_HEADERS)),
)


class SignatureAuthorization(AuthorizationServicer):
    def __init__(self, verifier: HmacVerifier, checks: Counter) -> None:
        self.verifier = verifier
        self.checks = checks  # labelled by result: ok or the rejection code

    async def Check(self, request: authz.CheckRequest, context: grpc.aio.ServicerContext) -> authz.CheckResponse:
        http = request.attributes.request.http
        body = http.raw_body or http.body.encode()
        rejection = self.verifier.check(http.method, http.path, http.headers, body)
        self.checks.labels(rejection.code if rejection else "ok").inc()
        if rejection is None:
            return ALLOWED
        log.info("refused %s %s: %s", http.method, http.path, rejection.code)
        return denied(rejection)


def denied(rejection: Rejection) -> authz.CheckResponse:
    code = code_pb2.UNAUTHENTICATED if rejection.status == 401 else code_pb2.UNAVAILABLE
    return authz.CheckResponse(
        status=status_pb2.Status(code=code),
        denied_response=authz.DeniedHttpResponse(
            status=HttpStatus(code=rejection.status),
            headers=[HeaderValueOption(header=HeaderValue(key="content-type", value="application/json"))],
            body=openai_error(rejection.status, rejection.message, code=rejection.code).decode(),
        ),
    )
