"""Reusable pytest fixtures: a generated tiny model and a running llama-server serving it.

Import them into a conftest or test module: ``from tests.conftest_llama import llama_server, tiny_model``.
"""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from extproc.local.llama_server import LlamaServer
from extproc.local.tiny_model import TinyModelSpec, generate_tiny_model

ALIAS = "tiny-llama"
PARALLEL = 2
CTX_SIZE = 2048


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default tiny model, generated once per session into a temp dir."""
    return generate_tiny_model(tmp_path_factory.mktemp("models") / "tiny.gguf", TinyModelSpec(name=ALIAS))


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def llama_server(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """Base URL of a ready llama-server (alias ``ALIAS``, ``PARALLEL`` slots, ``CTX_SIZE`` context)."""
    log = tmp_path_factory.mktemp("llama") / "llama-server.log"
    server = LlamaServer(tiny_model, alias=ALIAS, parallel=PARALLEL, ctx_size=CTX_SIZE, log_path=log)
    async with server:
        yield server.base_url
