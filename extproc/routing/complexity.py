"""Rule-based prompt complexity scoring for capability routing (runs on the request hot path).

`assess` reads a parsed OpenAI chat-completions body and returns a score in [0, 1], a `Tier` and the
normalized features behind the score. It never raises on odd input: anything that is not the expected
shape counts as empty. Work is linear in prompt size and capped: lengths are always exact, but marker scans
look at most at the first and last `_SAMPLE_CHARS` characters of a very long text. See docs/COMPLEXITY.md.
"""

from __future__ import annotations

import bisect
import functools
import math
import re
from dataclasses import dataclass
from enum import IntEnum
from itertools import compress, count
from operator import mul
from typing import Any

from extproc.routing.tokens import CHARS_PER_TOKEN


class Tier(IntEnum):
    """Capability a prompt needs, cheapest first."""

    SIMPLE = 0
    MEDIUM = 1
    COMPLEX = 2
    REASONING = 3

    @classmethod
    def parse(cls, name: str) -> Tier:
        """The tier called `name`, case-insensitive."""
        try:
            return cls[name.strip().upper()]
        except (KeyError, AttributeError):
            valid = ", ".join(tier.name.lower() for tier in cls)
            raise ValueError(f"unknown tier {name!r}; valid tiers: {valid}") from None


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Ascending score cut points: a score at or above a cut point reaches that tier."""

    medium: float
    complex: float
    reasoning: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.medium < self.complex < self.reasoning <= 1.0:
            raise ValueError(
                "thresholds must satisfy 0 <= medium < complex < reasoning <= 1, got "
                f"{self.medium}, {self.complex}, {self.reasoning}"
            )

    def tier(self, score: float) -> Tier:
        """The tier a score falls in."""
        return _TIERS[bisect.bisect_right((self.medium, self.complex, self.reasoning), score)]


@dataclass(frozen=True, slots=True)
class Complexity:
    """A scored prompt: `features` holds the weighted inputs in [0, 1] plus raw token estimates."""

    score: float
    tier: Tier
    features: dict[str, float]


_TIERS = tuple(Tier)
DEFAULT_THRESHOLDS = Thresholds(medium=0.25, complex=0.45, reasoning=0.84)

_SAMPLE_CHARS = 4096  # marker scans read at most this many characters from each end of a user message
_SYSTEM_SAMPLE_CHARS = 1024  # ... and of the system prompt, which states its demands at its start and end

# Weights of the normalized features (each in [0, 1]) in the logit `sum(w * f) - _BIAS`.
# Explicit reasoning demands (prove, derive, step by step, optimal) are the strongest evidence that a small
# model fails, so they dominate; math notation and analysis verbs (compare, design, trade-off) are the next
# tier of evidence. Constraint count, tools and JSON-schema output raise the bar for instruction following.
# Length and context carry moderate weight: long prompts are often just pasted material. Code, generation
# verbs ("write", "build") and explanatory questions mark real work but are common in medium prompts, so they
# weigh less. A factual opener ("what is", "who") is the one negative signal. _BIAS only shifts the scale: a
# short factual question lands near 0.1, and DEFAULT_THRESHOLDS are set on the same scale.
WEIGHTS: dict[str, float] = {
    "reasoning": 4.0,
    "math": 2.0,
    "analysis": 1.2,
    "constraints": 1.4,
    "length": 1.6,
    "context": 0.8,
    "depth": 0.5,
    "code": 0.8,
    "code_topic": 0.3,
    "task": 0.7,
    "explain": 0.6,
    "tools": 0.8,
    "schema": 1.0,
    "system": 0.6,
    "quantities": 1.0,
    "factual": -0.8,
}
_BIAS = 2.0
_WEIGHT_VALUES = tuple(WEIGHTS.values())

# Hit counts at which each counted feature saturates to 1.
_SATURATION = {
    "reasoning": 1.5,
    "math": 4.0,
    "analysis": 3.0,
    "constraints": 6.0,
    "code": 6.0,
    "code_topic": 3.0,
    "task": 2.0,
    "explain": 2.0,
}
_NO_HITS = dict.fromkeys(_SATURATION, 0)
_LENGTH_FULL_TOKENS = 1000.0  # last user message length at which `length` saturates (log scale)
_CONTEXT_FULL_TOKENS = 4000.0  # history + system length at which `context` saturates (log scale)
_DEPTH_FULL_TURNS = 4.0
_QUANTITIES_FULL = 5.0  # numbers in the instruction at which `quantities` saturates
_INSTRUCTION_CHARS = 600  # how much of the last user message counts as its instruction
_TOOLS_FULL = 3.0

_WORDS_BY_CATEGORY = {
    "reasoning": """prove proves proving proof proofs disprove derive derives deriving derivation theorem
        lemma induction counterexample rigorous rigorously formally justify deduce optimal optimality
        undecidable invariant recurrence asymptotic significant significance interleaving deadlock
        deadlocks valid impossible puzzle riddle liar liars""",
    "math": """integral integrate derivative derivatives equation equations solve probability probabilities
        matrix eigenvalue eigenvalues polynomial prime primes modulo factorial logarithm irrational integer
        integers reals inequality extrema inflection kinematics statistic variance deviation bayes
        sensitivity specificity utilization quantity""",
    "analysis": """analyze analyse analysis compare comparison contrast tradeoff tradeoffs evaluate assess
        critique review design architecture strategy recommend implications risks diagnose investigate
        migrate refactor optimize scalability estimate""",
    "constraints": """must should shall exactly only never always ensure avoid without include including keep
        required limit each""",
    "task": """write implement build create generate draft compose summarize summarise extract develop produce
        outline classify""",
    "explain": "why explain explaining explanation describe",
    "code_topic": """python javascript typescript java rust golang sql postgresql bash regex function api
        endpoint endpoints docker dockerfile kubernetes terraform pandas async asyncio thread threads mutex
        git algorithm""",
}
_WORDS = {word: cat for cat, words in _WORDS_BY_CATEGORY.items() for word in words.split()}
_PHRASES_BY_CATEGORY = {
    "reasoning": """step by step | show that | show why | prove or disprove | perfect play | worst case
        | counter model | root cause | minimum number | no shorter | in fewer | show your reasoning
        | show your work | show your working""",
    "analysis": "trade off | trade offs | pros and cons | explain why | edge cases | what would happen",
    "constraints": "at least | at most | no more than | fewer than | do not | don t | make sure",
    "explain": """how does | how would | how come | what happens | what if | walk me through
        | difference between""",
}
# First word -> (the words that must follow, category); words are tokens of `_WORD_RE` ("don't" -> "don t").
_PHRASES: dict[str, list[tuple[list[str], str]]] = {}
for _category, _phrases in _PHRASES_BY_CATEGORY.items():
    for _first, *_rest in (phrase.split() for phrase in _phrases.split("|")):
        _PHRASES.setdefault(_first, []).append((_rest, _category))
# Marker word -> (its category or None, the phrases it starts).
_MARKERS: dict[str, tuple[str | None, list[tuple[list[str], str]]]] = {
    word: (_WORDS.get(word), _PHRASES.get(word, [])) for word in _WORDS.keys() | _PHRASES.keys()
}

_FACTUAL_OPENERS = frozenset(
    "who whom whose what when where which name define is are was were does did can".split()  # noqa: SIM905
)
_HOW_FACTUAL = frozenset(["many", "much", "long", "old", "far", "often", "big", "tall"])

_WORD_RE = re.compile(r"[a-z0-9]+")
# ASCII text -> the same words as `_WORD_RE` in its lower case, by `str.translate` and `split` (faster).
_ASCII_WORDS = {c: chr(c).lower() if chr(c).isalnum() else " " for c in range(128)}
_LIST_COMMA_RE = re.compile(r",\s*[^\W\d_]")  # a comma before a word: an item of a listed requirement
_NUMBER_RE = re.compile(r"\d\d*(?:[.,]\d+)*")  # `\d+` spelt so the engine can skip to digits fast
# Symbol markers per category, tried in this order at each position of one regex. Every alternative starts
# with a literal character, which lets the engine skip ordinary prose fast (a leading group or character class
# defeats that optimisation); the empty group closing each alternative tells its category.
_SYMBOLS = {
    "code": ["```", "=>", "->", "::", "==", "!=", "&&", r"\|\|", *(re.escape(c) + r"[ \t]*\n" for c in ";{}")],
    "math": [r"\\[a-zA-Z]{2,}", *map(re.escape, "^√π∑∫²³≤≥±\u00d7\u00f7"), r"=[ \t]*-?\d", r"O\("],
    "constraints": [r"\n[ \t]*(?:[-*•]|\d{1,2}[.)])[ \t]", r"\(\d{1,2}\)"],
}
_SYMBOL_RE = re.compile("|".join(f"{marker}()" for markers in _SYMBOLS.values() for marker in markers))
# By group number (0 is the whole match): every match ends with the empty group of the alternative it took.
_SYMBOL_CATEGORIES = ("", *(category for category, markers in _SYMBOLS.items() for _ in markers))


def assess(body: Any, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> Complexity:
    """Score how much capability a chat-completions request body needs."""
    features = _features(body if isinstance(body, dict) else {})
    logit = sum(map(mul, _WEIGHT_VALUES, map(features.__getitem__, WEIGHTS))) - _BIAS
    score = 1.0 / (1.0 + math.exp(-logit))
    return Complexity(score, thresholds.tier(score), features)


def _features(body: dict) -> dict[str, float]:
    last_user, system, history, prior_turns = _split_messages(body.get("messages"))
    instruction = _instruction(last_user)
    hits = _scan(_sample(last_user))
    hits["constraints"] += len(_LIST_COMMA_RE.findall(instruction))
    hits["code"] += 2 * sum(_sample(text).count("```") for text in history)
    context_chars = len(system) + sum(map(len, history))
    features = {category: _ratio(hits[category], full) for category, full in _SATURATION.items()}
    features["length"] = _log_scale(len(last_user) / CHARS_PER_TOKEN, _LENGTH_FULL_TOKENS)
    features["context"] = _log_scale(context_chars / CHARS_PER_TOKEN, _CONTEXT_FULL_TOKENS)
    features["depth"] = _ratio(prior_turns, _DEPTH_FULL_TURNS)
    features["tools"] = _ratio(_count(body.get("tools")) + _count(body.get("functions")), _TOOLS_FULL)
    features["schema"] = _schema_demand(body.get("response_format"))
    system_demands = _system_demands(_sample(system, _SYSTEM_SAMPLE_CHARS))
    features["system"] = 0.5 * _log_scale(len(system) / CHARS_PER_TOKEN, _LENGTH_FULL_TOKENS) + 0.5 * system_demands
    features["quantities"] = _ratio(len(_NUMBER_RE.findall(instruction)), _QUANTITIES_FULL)
    features["factual"] = 1.0 if _factual_opener(last_user) else 0.0
    features["tokens_last"] = len(last_user) / CHARS_PER_TOKEN
    features["tokens_total"] = (len(last_user) + context_chars) / CHARS_PER_TOKEN
    return features


@functools.lru_cache(maxsize=256)
def _system_demands(sample: str) -> float:
    """The saturated constraint and task hits of a system prompt sample (cached: applications repeat theirs)."""
    hits = _scan(sample)
    return _ratio(hits["constraints"] + hits["task"], _SATURATION["constraints"])


def _split_messages(messages: Any) -> tuple[str, str, list[str], int]:
    """(last user text, system text, other texts, number of non-system messages before the last user one)."""
    system: list[str] = []
    roles: list[Any] = []
    texts: list[str] = []
    for message in messages if isinstance(messages, list) else ():
        if isinstance(message, dict):
            role, text = message.get("role"), _text(message.get("content"))
            if role in ("system", "developer"):
                system.append(text)
            else:
                roles.append(role)
                texts.append(text)
    if "user" not in roles:
        return "", "\n".join(system), texts, len(texts)
    last = len(roles) - 1 - roles[::-1].index("user")
    return texts[last], "\n".join(system), texts[:last] + texts[last + 1 :], last


def _text(content: Any) -> str:
    """The text of a message content: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _sample(text: str, chars: int = _SAMPLE_CHARS) -> str:
    """The whole text, or its first and last `chars` characters when it is longer than both."""
    if len(text) <= 2 * chars:
        return text
    return f"{text[:chars]}\n{text[-chars:]}"


def _scan(sample: str) -> dict[str, int]:
    """Marker hits per category in a text sample: one pass over its marker words and one symbol pass."""
    hits = _NO_HITS.copy()
    words = _words(sample)
    for end in compress(count(1), map(_MARKERS.__contains__, words)):  # end: the index after the marker word
        category, phrases = _MARKERS[words[end - 1]]
        if category is not None:
            hits[category] += 1
        for rest, phrase_category in phrases:
            if words[end : end + len(rest)] == rest:
                hits[phrase_category] += 1
    for match in _SYMBOL_RE.finditer(sample):
        hits[_SYMBOL_CATEGORIES[match.lastindex or 0]] += 1
    return hits


def _words(text: str) -> list[str]:
    """The `_WORD_RE` tokens of the lower-cased text."""
    if text.isascii():
        return text.translate(_ASCII_WORDS).split()
    return _WORD_RE.findall(text.lower())


def _instruction(text: str) -> str:
    """The instruction part of a message: its start, up to the first blank line (pasted material follows)."""
    return text[:_INSTRUCTION_CHARS].split("\n\n", 1)[0]


def _factual_opener(text: str) -> bool:
    """Whether the message opens like a lookup question ("what is", "who", "how many")."""
    opening = _words(text[:64])[:2]
    if not opening:
        return False
    if opening[0] == "how":
        return len(opening) > 1 and opening[1] in _HOW_FACTUAL
    return opening[0] in _FACTUAL_OPENERS


def _schema_demand(response_format: Any) -> float:
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    return 1.0 if kind == "json_schema" else 0.5 if kind == "json_object" else 0.0


def _count(items: Any) -> int:
    return len(items) if isinstance(items, list) else 0


def _log_scale(value: float, full: float) -> float:
    """log1p(value) relative to log1p(full), capped at 1."""
    return _ratio(math.log1p(value), math.log1p(full))


def _ratio(value: float, full: float) -> float:
    """value / full, capped at 1 (as `min(value / full, 1.0)`, faster)."""
    ratio = value / full
    return 1.0 if ratio > 1.0 else ratio
