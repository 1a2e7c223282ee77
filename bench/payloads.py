"""Request and response bodies shared by the fake upstreams, the load generator and the in-process timings."""

from __future__ import annotations

from typing import Any

import orjson

UPSTREAM_MODEL = "tiny-llama"

# What the fake upstream answers to every POST /v1/chat/completions: a real OpenAI chat.completion with usage.
COMPLETION: dict[str, Any] = {
    "id": "chatcmpl-bench0000000000000000000000",
    "object": "chat.completion",
    "created": 1_700_000_000,
    "model": UPSTREAM_MODEL,
    "system_fingerprint": "fp_bench",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Packets hum along / the router weighs every path / cheap one wins today",
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 27, "completion_tokens": 17, "total_tokens": 44},
}
COMPLETION_BYTES = orjson.dumps(COMPLETION)

# The request every load cell sends: a short chat a cheap cluster serves under the hybrid strategy.
CHAT_REQUEST: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Write a haiku about network routers."},
    ],
    "max_tokens": 64,
    "temperature": 0.7,
}
CHAT_REQUEST_BYTES = orjson.dumps(CHAT_REQUEST)

# A streaming client that wants the stream's usage (as a cost-aware one does), and one that does not: the
# usage event the router asks the target for must then be removed (Envoy's Lua filter does it).
STREAM_REQUEST: dict[str, Any] = {**CHAT_REQUEST, "stream": True, "stream_options": {"include_usage": True}}
STREAM_REQUEST_BYTES = orjson.dumps(STREAM_REQUEST)
STREAM_REQUEST_NO_USAGE_BYTES = orjson.dumps({**CHAT_REQUEST, "stream": True})

_FILLER = (
    "The quarterly report covers revenue, churn and the migration of the billing service to the new "
    "cluster. Each section lists the owners, the open questions and the dates we agreed on last week. "
)


def large_prompt_request(size_bytes: int = 1 << 20) -> bytes:
    """A chat request of about `size_bytes` whose user message is pasted prose (a long document to summarise)."""
    head = {"model": "gpt-4.1-mini", "messages": [], "max_tokens": 512}
    overhead = len(orjson.dumps(head)) + 200
    text = (_FILLER * (size_bytes // len(_FILLER) + 1))[: max(size_bytes - overhead, 0)]
    body = {
        **head,
        "messages": [
            {"role": "system", "content": "You summarise documents for busy engineers."},
            {"role": "user", "content": "Summarise the following document in five bullet points.\n\n" + text},
        ],
    }
    return orjson.dumps(body)


def sse_chunks(count: int) -> list[bytes]:
    """`count` content chunks, a usage chunk and [DONE], as an OpenAI-compatible server streams them."""
    words = COMPLETION["choices"][0]["message"]["content"].split()
    base = {
        "id": COMPLETION["id"],
        "object": "chat.completion.chunk",
        "created": COMPLETION["created"],
        "model": UPSTREAM_MODEL,
    }
    events = []
    for i in range(count):
        delta = {"role": "assistant", "content": ""} if i == 0 else {"content": " " + words[i % len(words)]}
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": "stop" if i == count - 1 else None}
        events.append({**base, "choices": [choice]})
    events.append({**base, "choices": [], "usage": COMPLETION["usage"]})
    return [b"data: " + orjson.dumps(e) + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]
