"""Shared fixtures: a real llama.cpp server, provider stand-ins, and the real stack."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest_llama import llama_server, tiny_model  # noqa: F401
from tests.stack_runner import RunningStack, local_cluster, run_stack, stack_document
from tests.standins.base import serve_in_thread
from tests.standins.openai_standin import OpenAIStandIn

PROVIDER_KEY = "sk-provider-secret-4f1d"  # distinctive, so leaks are easy to spot


@pytest.fixture(scope="session")
def openai_standin() -> Iterator[OpenAIStandIn]:
    standin = OpenAIStandIn(api_key=PROVIDER_KEY)
    with serve_in_thread(standin):
        yield standin


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, openai_standin: OpenAIStandIn) -> Iterator[RunningStack]:
    """One llama.cpp cluster plus an OpenAI stand-in as the external provider "openai"."""
    document = stack_document(
        clusters=[local_cluster("local-aws", 0.0928)],
        providers=[
            {
                "name": "openai",
                "type": "openai",
                "apiKey": "${TEST_OPENAI_KEY}",
                "defaultModel": "gpt-4o-mini",
                "baseUrl": openai_standin.base_url,
            }
        ],
    )
    with run_stack(document, tmp_path_factory.mktemp("stack"), env={"TEST_OPENAI_KEY": PROVIDER_KEY}) as running:
        yield running
