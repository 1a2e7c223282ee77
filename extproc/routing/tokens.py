"""Token estimates for a chat request without a tokenizer: fast, linear, slightly pessimistic.

English text averages about four characters per token in the BPE vocabularies of today's models; each
chat message carries a few tokens of framing (role, separators) and the reply is primed with three more.
"""

from __future__ import annotations

from typing import Any

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4
REPLY_PRIMING_TOKENS = 3
TOKENS_PER_IMAGE = 765  # a high-detail 1024x1024 image in OpenAI's accounting


def text_tokens(text: str) -> int:
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def content_tokens(content: Any) -> int:
    """Tokens of one message's `content`: a string or a list of typed parts."""
    if isinstance(content, str):
        return text_tokens(content)
    if not isinstance(content, list):
        return 0
    total = 0
    for part in content:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "image_url":
            total += TOKENS_PER_IMAGE
        elif isinstance(part.get("text"), str):
            total += text_tokens(part["text"])
    return total


def message_tokens(message: dict[str, Any]) -> int:
    total = TOKENS_PER_MESSAGE + content_tokens(message.get("content"))
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            total += text_tokens(str(function.get("name", ""))) + text_tokens(str(function.get("arguments", "")))
    return total


def prompt_tokens(messages: list[dict[str, Any]], tools_json_length: int = 0) -> int:
    """Estimated input tokens of a whole request (messages plus serialised tool definitions)."""
    return REPLY_PRIMING_TOKENS + sum(message_tokens(m) for m in messages) + tools_json_length // CHARS_PER_TOKEN
