"""The translator for each target API named in the configuration."""

from __future__ import annotations

from extproc.providers.anthropic import AnthropicTranslator
from extproc.providers.base import Translator
from extproc.providers.gemini import GeminiTranslator
from extproc.providers.openai_compat import OpenAICompatTranslator

_TRANSLATORS: dict[str, Translator] = {
    translator.api: translator for translator in (OpenAICompatTranslator(), AnthropicTranslator(), GeminiTranslator())
}


def translator_for(api: str) -> Translator:
    """The translator for `api`: "openai" (OpenAI and llama.cpp servers), "anthropic" or "gemini"."""
    try:
        return _TRANSLATORS[api]
    except KeyError:
        raise ValueError(f"unknown target api {api!r}; expected one of {sorted(_TRANSLATORS)}") from None
