"""The checked-in example bootstrap is exactly what `llm-router envoy-config` renders for the embedded default."""

from __future__ import annotations

import subprocess
from pathlib import Path

from extproc.config.default import default_config
from extproc.envoy_config.bootstrap import render_bootstrap_yaml
from extproc.local.envoy_process import envoy_binary

EXAMPLE = Path(__file__).parent.parent / "envoy" / "envoy.yaml"


def test_example_bootstrap_is_current() -> None:
    assert EXAMPLE.read_text() == render_bootstrap_yaml(default_config({})), (
        "envoy/envoy.yaml is stale: run `llm-router envoy-config -o envoy/envoy.yaml`"
    )


def test_example_bootstrap_passes_envoy_validate() -> None:
    result = subprocess.run(
        [str(envoy_binary()), "--mode", "validate", "-c", str(EXAMPLE)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
