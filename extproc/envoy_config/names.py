"""Names shared by the rendered Envoy config and the controller."""

CONTROLLER_GRPC = "llm_router_controller_grpc"
CONTROLLER_HTTP = "llm_router_controller_http"
METADATA_NAMESPACE = "llm_router"  # endpoint metadata (which target) and attempt dynamic metadata
ROUTE_PHASE = "route"  # the downstream ext_proc: decide
ATTEMPT_PHASE = "attempt"  # the upstream ext_proc: translate per attempt
DECISION_NAMESPACE = "llm_router.decision"  # dynamic metadata: router ext_proc -> every attempt ext_proc
# ext_authz's dynamic metadata (the caller's tenant and grants): Envoy 1.40 files it under the filter's type name
AUTH_NAMESPACE = "envoy.filters.http.ext_authz"
# in the decision's metadata: a prepared stream whose client did not ask for its usage event (Envoy removes it)
REMOVE_USAGE_EVENT = "remove_usage_event"
USAGE_NAMESPACE = "llm_router.usage"  # dynamic metadata: a response's usage, read by Envoy's json_to_metadata
CHAT_COMPLETIONS_PATH = "/v1/chat/completions"
