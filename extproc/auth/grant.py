"""What an admitted key grants, carried from ext_authz to both ext_procs as Envoy dynamic metadata.

Dynamic metadata is written by Envoy's ext_authz filter from the controller's answer: a client cannot set or
forge it, unlike a header.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from google.protobuf.struct_pb2 import Struct

from extproc.auth.config import ANONYMOUS
from extproc.config.model import ApiKey
from extproc.envoy_config.names import AUTH_NAMESPACE

ANY_MODEL = "auto"  # the requested model that leaves the choice to the router


@dataclass(frozen=True, slots=True)
class Grant:
    tenant: str
    allowed_models: frozenset[str] | None  # None: any


OPEN = Grant(ANONYMOUS, None)  # no ext_authz ran: auth is off


def grant_metadata(key: ApiKey) -> Struct:
    """ext_authz's dynamic metadata for an admitted key (Envoy files it under AUTH_NAMESPACE)."""
    struct = Struct()
    grant: dict[str, object] = {"tenant": key.tenant, "key": key.name}
    if key.allowed_models is not None:
        grant["models"] = sorted(key.allowed_models)
    struct.update(grant)
    return struct


def grant_of(message: ep.ProcessingRequest) -> Grant:
    return grant_in(message.metadata_context.filter_metadata)


def grant_in(filter_metadata: Mapping[str, Struct]) -> Grant:
    """The grant in Envoy dynamic metadata (an ext_proc message's, or an access log entry's)."""
    namespace = filter_metadata.get(AUTH_NAMESPACE)
    if namespace is None or "tenant" not in namespace.fields:
        return OPEN
    models = namespace.fields.get("models")
    allowed = frozenset(v.string_value for v in models.list_value.values) if models is not None else None
    return Grant(namespace.fields["tenant"].string_value, allowed)


def model_refusal(requested: str, allowed: frozenset[str], served: Iterable[str]) -> str | None:
    """Why a key limited to `allowed` models cannot have this request, or None when it can."""
    listed = ", ".join(sorted(allowed))
    if requested not in (ANY_MODEL, "") and requested not in allowed:
        return f"The model {requested!r} is not allowed for this API key (allowed: {listed})."
    if allowed.isdisjoint(served):
        return f"No target of this router serves a model this API key may use ({listed})."
    return None
