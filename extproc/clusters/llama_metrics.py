"""Read the few llama.cpp server metrics routing needs from its Prometheus text (`--metrics`)."""

from __future__ import annotations

from dataclasses import dataclass

_WANTED = {
    "llamacpp:requests_processing",
    "llamacpp:requests_deferred",
    "llamacpp:tokens_predicted_total",
    "llamacpp:tokens_predicted_seconds_total",
    "llamacpp:prompt_tokens_total",
    "llamacpp:prompt_seconds_total",
}


@dataclass(frozen=True, slots=True)
class LlamaMetrics:
    processing: int
    deferred: int
    tokens_predicted: float
    predicting_seconds: float
    prompt_tokens: float
    prompt_seconds: float


def parse_llama_metrics(text: str) -> LlamaMetrics:
    values: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        name, _, rest = line.partition(" ")
        if name in _WANTED:
            try:
                values[name] = float(rest.split()[0])
            except (ValueError, IndexError):
                continue
    return LlamaMetrics(
        processing=int(values.get("llamacpp:requests_processing", 0)),
        deferred=int(values.get("llamacpp:requests_deferred", 0)),
        tokens_predicted=values.get("llamacpp:tokens_predicted_total", 0.0),
        predicting_seconds=values.get("llamacpp:tokens_predicted_seconds_total", 0.0),
        prompt_tokens=values.get("llamacpp:prompt_tokens_total", 0.0),
        prompt_seconds=values.get("llamacpp:prompt_seconds_total", 0.0),
    )
