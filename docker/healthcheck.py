"""Container health check: GET the controller's /health on its admin port, both read from the router config.

Exit 0 on HTTP 200, else 1 (Docker HEALTHCHECK semantics). `LLM_ROUTER_HEALTH_URL` overrides the URL.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

DEFAULT_CONFIG = "/etc/llm-router/router.yaml"
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def health_url(config_path: str) -> str:
    """Where the controller answers /health: its bind host (a wildcard means loopback) and httpPort."""
    from extproc.config.loader import load_config

    server = load_config(config_path).server
    host = getattr(server, "controller_bind_host", None) or server.controller_host
    host = _WILDCARDS.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{server.http_port}/health"


def main() -> int:
    url = os.environ.get("LLM_ROUTER_HEALTH_URL") or health_url(os.environ.get("LLM_ROUTER_CONFIG", DEFAULT_CONFIG))
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
