"""The two ext_proc filters: the router's (downstream, decides) and the attempt's (upstream, translates),
and what stands in for the attempt's on a first try the router prepared (usage metadata, access log).

Both fail closed: without the controller no request can be priced, authorised or rewritten, and a request
sent on unrewritten would carry no credentials to a target anyway.
"""

from __future__ import annotations

from typing import Any

from extproc.envoy_config.names import (
    ATTEMPT_PHASE,
    AUTH_NAMESPACE,
    CONTROLLER_GRPC,
    DECISION_NAMESPACE,
    REMOVE_USAGE_EVENT,
    ROUTE_PHASE,
    USAGE_NAMESPACE,
)
from extproc.headers import ATTEMPT_HEADER, PHASE_METADATA, PREPARED_HEADER

EXT_PROC = "envoy.filters.http.ext_proc"
EXT_PROC_TYPE = "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor"
# Envoy waits this long for each controller reply; a decision takes well under a millisecond.
MESSAGE_TIMEOUT = "2s"
# Prepared attempts' access log entries: sent in batches at least this often (accounting lags by as much).
ACCESS_LOG_FLUSH = "0.1s"
ACCESS_LOG_BUFFER_BYTES = 16384


def route_filter() -> dict[str, Any]:
    """Request headers SEND (keeps the route open for the cluster header) + buffered body: two messages."""
    return {
        "name": EXT_PROC,
        "typed_config": {
            **_common(ROUTE_PHASE),
            "processing_mode": _mode(response_headers="SKIP"),
            "metadata_options": {
                "forwarding_namespaces": {"untyped": [AUTH_NAMESPACE]},
                "receiving_namespaces": {"untyped": [DECISION_NAMESPACE]},
            },
        },
    }


def attempt_filter() -> dict[str, Any]:
    """Per attempt: which target (upstream host metadata), the body to translate, and the response phases."""
    return {
        "name": EXT_PROC,
        "typed_config": {
            **_common(ATTEMPT_PHASE),
            "processing_mode": _mode(response_headers="SEND"),
            "allow_mode_override": True,
            "request_attributes": ["xds.upstream_host_metadata"],
            "metadata_options": {"forwarding_namespaces": {"untyped": [DECISION_NAMESPACE, AUTH_NAMESPACE]}},
        },
    }


def attempt_filters(prepared: bool) -> list[dict[str, Any]]:
    """A cluster's upstream filters, run once per attempt: the attempt exchange and the codec. When the router's
    ext_proc may prepare first attempts (`prepared`), the exchange is skipped on the first try of a request it
    prepared, and the prepared mark is removed before the request leaves."""
    if not prepared:
        return [attempt_filter(), upstream_codec()]
    return [skipped_when_prepared(attempt_filter()), _remove_request_header(PREPARED_HEADER), upstream_codec()]


def skipped_when_prepared(filter_: dict[str, Any]) -> dict[str, Any]:
    """`filter_`, skipped when the request is marked prepared and this is its first attempt (Envoy's retries
    count up in x-envoy-attempt-count; the mark is gone by then anyway)."""
    return {
        "name": filter_["name"],
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.common.matching.v3.ExtensionWithMatcher",
            "xds_matcher": {
                "matcher_list": {
                    "matchers": [
                        {
                            "predicate": {
                                "and_matcher": {
                                    "predicate": [_header_is(ATTEMPT_HEADER, "1"), _header_is(PREPARED_HEADER, "1")]
                                }
                            },
                            "on_match": {
                                "action": {
                                    "name": "skip",
                                    "typed_config": {
                                        "@type": "type.googleapis.com/envoy.extensions.filters.common.matcher.action"
                                        ".v3.SkipFilter"
                                    },
                                }
                            },
                        }
                    ]
                }
            },
            "extension_config": filter_,
        },
    }


def usage_to_metadata() -> dict[str, Any]:
    """Envoy reads a JSON response's `usage` into dynamic metadata, for the access log of prepared attempts."""
    return {
        "name": "envoy.filters.http.json_to_metadata",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.json_to_metadata.v3.JsonToMetadata",
            "response_rules": {
                # llama.cpp's server says "application/json; charset=utf-8"; Envoy compares the whole value.
                "allow_content_types": ["application/json", "application/json; charset=utf-8"],
                "rules": [
                    {
                        "selectors": [{"key": "usage"}, {"key": key}],
                        "on_present": {"metadata_namespace": USAGE_NAMESPACE, "key": key},
                    }
                    for key in ("prompt_tokens", "completion_tokens")
                ],
            },
        },
    }


# Streams carry their usage in one SSE event near the end (the router asks for it: stream_options.include_usage).
# Envoy's Lua filter reads it chunk by chunk as the chunks pass for prepared streams. When the client did not
# ask for that event (the decision's `REMOVE_USAGE_EVENT`), the filter also takes it out, as the attempt
# exchange would: whole events pass on at once, an incomplete one waits for the rest of it (an SSE client
# ignores a partial event anyway), unless it grows past a limit (then the stream is not the SSE expected and
# passes as it is). Lua objects from before a yield (each chunk) are stale after it, and an error would reset
# the client's stream: every chunk asks for the stream info afresh, inside pcall.
_STREAM_USAGE_LUA = f"""
-- Either order (llama.cpp's server puts completion_tokens first), nested objects beside them.
local USAGE = '"usage"%s*:%s*{{'
local PROMPT_TOKENS = '"prompt_tokens"%s*:%s*(%d+)'
local COMPLETION_TOKENS = '"completion_tokens"%s*:%s*(%d+)'
local NO_CHOICES = '"choices"%s*:%s*%[%s*%]'
local EVENT_END = '\\r?\\n\\r?\\n'
local HOLD_LIMIT = 65536

local function note_usage(handle, text)
  local at = string.find(text, USAGE)
  if at == nil then
    return false
  end
  local prompt = string.match(text, PROMPT_TOKENS, at)
  local completion = string.match(text, COMPLETION_TOKENS, at)
  if prompt == nil or completion == nil then
    return false
  end
  local metadata = handle:streamInfo():dynamicMetadata()
  metadata:set("{USAGE_NAMESPACE}", "prompt_tokens", tonumber(prompt))
  metadata:set("{USAGE_NAMESPACE}", "completion_tokens", tonumber(completion))
  return true
end

-- The whole events of `text` but the usage-only one, and the incomplete event at its end.
local function without_usage_event(handle, text)
  local kept, start = {{}}, 1
  while true do
    local from, to = string.find(text, EVENT_END, start)
    if from == nil then
      break
    end
    local event = string.sub(text, start, to)
    if not (string.find(event, NO_CHOICES) and note_usage(handle, event)) then
      kept[#kept + 1] = event
    end
    start = to + 1
  end
  return table.concat(kept), string.sub(text, start)
end

local function read_usage(handle)
  local tail = ""
  for chunk in handle:bodyChunks() do
    local text = tail .. chunk:getBytes(0, chunk:length())
    pcall(note_usage, handle, text)
    tail = string.sub(text, -512)  -- an event split across two chunks is matched on the next one
  end
end

local function remove_usage_event(handle)
  local held = ""
  for chunk in handle:bodyChunks() do
    local text = held .. chunk:getBytes(0, chunk:length())
    local ok, events, rest = pcall(without_usage_event, handle, text)
    if not ok or #rest > HOLD_LIMIT then
      events, rest = text, ""
    end
    chunk:setBytes(events)
    held = rest
  end
end

function envoy_on_response(handle)
  local content_type = handle:headers():get("content-type") or ""
  if not string.find(content_type, "text/event-stream", 1, true) then
    return
  end
  local decision = handle:streamInfo():dynamicMetadata():get("{DECISION_NAMESPACE}")
  if decision == nil or not decision["prepared"] then
    return
  end
  if decision["{REMOVE_USAGE_EVENT}"] then
    remove_usage_event(handle)
  else
    read_usage(handle)
  end
end
"""


def stream_usage_to_metadata() -> dict[str, Any]:
    """Envoy reads a prepared stream's usage event into dynamic metadata, for its access log entry (and takes
    the event out when the client did not ask for it)."""
    return {
        "name": "envoy.filters.http.lua",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
            "default_source_code": {"inline_string": _STREAM_USAGE_LUA},
        },
    }


def prepared_access_log() -> dict[str, Any]:
    """Envoy's gRPC access log to the controller, only for requests whose first attempt was prepared."""
    return {
        "name": "envoy.access_loggers.http_grpc",
        "filter": {
            "metadata_filter": {
                "matcher": {
                    "filter": DECISION_NAMESPACE,
                    "path": [{"key": "prepared"}],
                    "value": {"bool_match": True},
                }
            }
        },
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig",
            "common_config": {
                "log_name": "llm_router",
                "transport_api_version": "V3",
                "grpc_service": {"envoy_grpc": {"cluster_name": CONTROLLER_GRPC}},
                "buffer_flush_interval": ACCESS_LOG_FLUSH,
                "buffer_size_bytes": ACCESS_LOG_BUFFER_BYTES,
            },
        },
    }


def upstream_codec() -> dict[str, Any]:
    return {
        "name": "envoy.filters.http.upstream_codec",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec",
        },
    }


def disabled_on_route() -> dict[str, Any]:
    return {
        EXT_PROC: {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute",
            "disabled": True,
        }
    }


def _header_is(name: str, value: str) -> dict[str, Any]:
    return {
        "single_predicate": {
            "input": {
                "name": name,
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.type.matcher.v3.HttpRequestHeaderMatchInput",
                    "header_name": name,
                },
            },
            "value_match": {"exact": value},
        }
    }


def _remove_request_header(name: str) -> dict[str, Any]:
    return {
        "name": "envoy.filters.http.header_mutation",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
            "mutations": {"request_mutations": [{"remove": name}]},
        },
    }


def _common(phase: str) -> dict[str, Any]:
    return {
        "@type": EXT_PROC_TYPE,
        "grpc_service": {
            "envoy_grpc": {"cluster_name": CONTROLLER_GRPC},
            "initial_metadata": [{"key": PHASE_METADATA, "value": phase}],
        },
        "failure_mode_allow": False,
        "message_timeout": MESSAGE_TIMEOUT,
        "mutation_rules": {"allow_all_routing": True},
    }


def _mode(response_headers: str) -> dict[str, str]:
    return {
        "request_header_mode": "SEND",
        "request_body_mode": "BUFFERED",
        "response_header_mode": response_headers,
        "response_body_mode": "NONE",
        "request_trailer_mode": "SKIP",
        "response_trailer_mode": "SKIP",
    }
