"""Side-by-side performance harness: Envoy alone, a minimal ext_proc, the controller and LiteLLM (see run.py)."""
