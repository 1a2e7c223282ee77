"""Header names shared by the controller and the Envoy config it renders."""

CLUSTER_HEADER = "x-llm-router-cluster"  # set by the controller; Envoy's route picks the cluster from it
STRATEGY_HEADER = "x-llm-router-strategy"  # a client's per-request strategy override
TARGET_HEADER = "x-llm-router-target"
REASON_HEADER = "x-llm-router-reason"
ESTIMATED_COST_HEADER = "x-llm-router-estimated-cost-usd"
# The client's own credentials never travel to a target.
CLIENT_CREDENTIAL_HEADERS = (
    "authorization",
    "x-api-key",
    "x-goog-api-key",
    "api-key",
    "proxy-authorization",
    "cookie",
)
DECISION_HEADER = "x-llm-router-decision"  # internal: router ext_proc -> attempt ext_proc, never leaves Envoy
ATTEMPT_HEADER = "x-envoy-attempt-count"  # set by Envoy on each upstream attempt
PHASE_METADATA = "x-llm-router-phase"  # gRPC metadata telling the controller which ext_proc filter is calling
