"""llm-router: an Envoy ext_proc controller that routes LLM traffic by cost and latency."""
