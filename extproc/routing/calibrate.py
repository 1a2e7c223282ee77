"""Pick the complexity threshold that sends a chosen share of traffic to premium targets.

The quantile method (as in RouteLLM): score a representative prompt set, then take the threshold whose
share of scores at or above it is the requested premium share. A request is premium when its score is at
or above the threshold.
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from extproc.routing.complexity import Tier, assess
from extproc.routing.tokens import prompt_tokens


class Side(TypedDict):
    count: int
    share: float


@dataclass(frozen=True, slots=True)
class LabelledPrompt:
    """One line of a prompt file: a chat-completions body and its tier label, if it has one."""

    body: dict
    tier: Tier | None


_LABEL_KEYS = ("tier", "domain")


def calibrate(scores: Sequence[float], premium_share: float) -> float:
    """The threshold t for which the share of scores >= t is as close as ties allow to `premium_share`.

    Equal scores always land on the same side, so with ties the achievable share nearest the target wins
    (the smaller premium share on an exact tie). The threshold returned is the shortest decimal that
    gives that split, so it can go into config as is.
    """
    if not 0.0 < premium_share < 1.0:
        raise ValueError(f"premium share must be strictly between 0 and 1, got {premium_share}")
    ordered = _checked_sorted(scores)
    n = len(ordered)
    distinct = sorted(set(ordered))
    # Candidate cut points, as (premium count, lower bound excluded, upper bound included): the threshold
    # can be any value in (lower, upper]; "above every score" is the candidate with premium count 0.
    lowers = [-math.inf, *distinct[:-1]]
    candidates = [(n - bisect.bisect_left(ordered, v), lo, v) for lo, v in zip(lowers, distinct, strict=True)]
    candidates.append((0, distinct[-1], math.inf))
    _, lower, upper = min(candidates, key=lambda c: (abs(c[0] / n - premium_share), c[0]))
    return _shortest_decimal(lower, upper)


def expected_split(scores: Sequence[float], threshold: float) -> dict[str, Side]:
    """Counts and shares of scores below the threshold ("cheap") and at or above it ("premium")."""
    ordered = _checked_sorted(scores)
    premium = len(ordered) - bisect.bisect_left(ordered, threshold)
    cheap = len(ordered) - premium
    return {
        "cheap": {"count": cheap, "share": cheap / len(ordered)},
        "premium": {"count": premium, "share": premium / len(ordered)},
    }


def load_prompts(path: Path) -> list[LabelledPrompt]:
    """Read a JSONL prompt file: one object per line with `messages` or `prompt`, an optional `tier`.

    Other keys (tools, response_format, ...) stay in the body; `domain` is a label and is dropped.
    """
    prompts = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                prompts.append(_parse_line(line, f"{path}:{number}"))
    if not prompts:
        raise ValueError(f"{path}: no prompts")
    return prompts


def run_calibration(
    path: Path, premium_share: float, price_cheap_per_1k: float | None, price_premium_per_1k: float | None
) -> str:
    """The printable calibration report: threshold, config snippet and, given both prices, the cost split.

    Costs count estimated prompt tokens only; completion lengths are unknown before routing.
    """
    if (price_cheap_per_1k is None) != (price_premium_per_1k is None):
        raise ValueError("give both prices (cheap and premium) or neither")
    bodies = [prompt.body for prompt in load_prompts(path)]
    scores = [assess(body).score for body in bodies]
    threshold = calibrate(scores, premium_share)
    split = expected_split(scores, threshold)
    lines = [
        f"prompts: {len(scores)} from {path}",
        f"complexity threshold: {threshold} (requested premium share {premium_share:.1%})",
        f"cheap:   {split['cheap']['count']:>6} prompts ({split['cheap']['share']:.1%})",
        f"premium: {split['premium']['count']:>6} prompts ({split['premium']['share']:.1%})",
        "",
        "config:",
        "router:",
        f"  complexityThreshold: {threshold}",
    ]
    if price_cheap_per_1k is not None and price_premium_per_1k is not None:
        tokens = [prompt_tokens(body["messages"], len(json.dumps(body.get("tools", [])))) for body in bodies]
        lines += ["", *_cost_lines(scores, tokens, threshold, price_cheap_per_1k, price_premium_per_1k)]
    return "\n".join(lines) + "\n"


def _cost_lines(
    scores: list[float], tokens: list[int], threshold: float, price_cheap: float, price_premium: float
) -> list[str]:
    """Report lines for the estimated prompt-token cost of each side against sending everything premium."""
    tokens_by_side = {"cheap": 0, "premium": 0}
    for score, count in zip(scores, tokens, strict=True):
        tokens_by_side["premium" if score >= threshold else "cheap"] += count
    cheap, premium = tokens_by_side["cheap"], tokens_by_side["premium"]
    cheap_cost = cheap / 1000 * price_cheap
    premium_cost = premium / 1000 * price_premium
    all_premium = (cheap + premium) / 1000 * price_premium
    saving = 1 - (cheap_cost + premium_cost) / all_premium if all_premium else 0.0
    return [
        "expected cost of the prompts' input tokens (estimated; completions not included):",
        f"  cheap:   {cheap:>10} tokens  {cheap_cost:>12.4f}",
        f"  premium: {premium:>10} tokens  {premium_cost:>12.4f}",
        f"  total:   {cheap_cost + premium_cost:.4f} vs {all_premium:.4f} all premium ({saving:.1%} saved)",
    ]


def _parse_line(line: str, where: str) -> LabelledPrompt:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: not JSON: {exc}") from None
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected a JSON object")
    if ("prompt" in record) == ("messages" in record):
        raise ValueError(f"{where}: needs exactly one of 'prompt' or 'messages'")
    tier = record.get("tier")
    body = {k: v for k, v in record.items() if k not in (*_LABEL_KEYS, "prompt")}
    if "prompt" in record:
        if not isinstance(record["prompt"], str):
            raise ValueError(f"{where}: 'prompt' must be a string")
        body["messages"] = [{"role": "user", "content": record["prompt"]}]
    elif not isinstance(record["messages"], list) or not all(isinstance(m, dict) for m in record["messages"]):
        raise ValueError(f"{where}: 'messages' must be a list of objects")
    try:
        return LabelledPrompt(body=body, tier=None if tier is None else Tier.parse(tier))
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _checked_sorted(scores: Sequence[float]) -> list[float]:
    if not scores:
        raise ValueError("no scores")
    if not all(math.isfinite(s) for s in scores):
        raise ValueError("scores must be finite numbers")
    return sorted(scores)


def _shortest_decimal(lower: float, upper: float) -> float:
    """The number with the fewest decimals in (lower, upper]; upper may be +inf, lower -inf."""
    for digits in range(16):
        scale = 10.0**digits
        candidate = (
            math.floor(upper * scale) / scale if math.isfinite(upper) else (math.floor(lower * scale) + 1) / scale
        )
        if lower < candidate <= upper:
            return candidate
    return upper
