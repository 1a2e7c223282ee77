"""A real llama-server serving the generated tiny model, and the LlamaServer process wrapper."""

import json
import os
from pathlib import Path

import aiohttp
import pytest

from extproc.local.llama_server import LlamaServer, free_port
from tests.conftest_llama import ALIAS, CTX_SIZE, PARALLEL, llama_server, tiny_model  # noqa: F401

pytestmark = pytest.mark.asyncio(loop_scope="session")

CHAT = {
    "model": ALIAS,
    "messages": [{"role": "user", "content": "hello, the model is fast"}],
    "max_tokens": 8,
}


async def _get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.text()


async def _post(url: str, body: dict[str, object]) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as resp:
        return resp.status, await resp.text()


async def test_health(llama_server: str) -> None:  # noqa: F811
    status, text = await _get(f"{llama_server}/health")
    assert status == 200 and json.loads(text) == {"status": "ok"}


async def test_chat_completion_reports_usage(llama_server: str) -> None:  # noqa: F811
    status, text = await _post(f"{llama_server}/v1/chat/completions", CHAT)
    assert status == 200, text
    body = json.loads(text)
    assert body["object"] == "chat.completion" and body["model"] == ALIAS
    assert body["choices"][0]["message"]["role"] == "assistant"
    usage = body["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_streamed_completion_ends_with_usage_and_done(llama_server: str) -> None:  # noqa: F811
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    status, text = await _post(f"{llama_server}/v1/chat/completions", body)
    assert status == 200, text
    events = [line.removeprefix("data: ") for line in text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert any(c["choices"] and c["choices"][0]["delta"].get("content") for c in chunks)
    last = chunks[-1]
    assert last["choices"] == []
    assert last["usage"]["prompt_tokens"] > 0 and last["usage"]["completion_tokens"] > 0


async def test_metrics_expose_queue_gauges(llama_server: str) -> None:  # noqa: F811
    status, text = await _get(f"{llama_server}/metrics")
    assert status == 200
    names = {line.split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
    assert {"llamacpp:requests_processing", "llamacpp:requests_deferred"} <= names


async def test_props_report_context_and_slots(llama_server: str) -> None:  # noqa: F811
    status, text = await _get(f"{llama_server}/props")
    assert status == 200
    props = json.loads(text)
    assert props["total_slots"] == PARALLEL
    assert props["default_generation_settings"]["n_ctx"] * PARALLEL == CTX_SIZE


async def test_tokenizer_uses_word_pieces(llama_server: str) -> None:  # noqa: F811
    status, text = await _post(f"{llama_server}/tokenize", {"content": "hello the world"})
    assert status == 200
    assert len(json.loads(text)["tokens"]) == 3


async def test_context_manager_starts_and_stops(tiny_model: Path, tmp_path: Path) -> None:  # noqa: F811
    async with LlamaServer(tiny_model, parallel=1, ctx_size=512, log_path=tmp_path / "s.log") as server:
        pid = server.pid
        assert pid is not None
        assert (await _get(f"{server.base_url}/health"))[0] == 200
    assert server.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_wait_ready_fails_fast_with_log_tail(tmp_path: Path) -> None:
    server = LlamaServer(tmp_path / "missing.gguf", free_port(), log_path=tmp_path / "s.log")
    server.start()
    try:
        with pytest.raises(RuntimeError, match="exited") as info:
            await server.wait_ready(timeout=30)
        assert "missing.gguf" in str(info.value)
    finally:
        server.stop()


async def test_start_twice_is_an_error(tmp_path: Path) -> None:
    server = LlamaServer(tmp_path / "missing.gguf", log_path=tmp_path / "s.log")
    server.start()
    try:
        with pytest.raises(RuntimeError, match="already started"):
            server.start()
    finally:
        server.stop()
