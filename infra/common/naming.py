"""Resource names: `<project>-<stack>-<component>`, squeezed into each cloud's rules where they are stricter."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_NOT_DNS = re.compile(r"[^a-z0-9-]+")
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class Naming:
    """Names for one stack of one program, e.g. Naming("llmr", "prod")."""

    project: str
    stack: str

    @property
    def prefix(self) -> str:
        return dns_label(f"{self.project}-{self.stack}")

    def name(self, component: str, max_length: int = 63) -> str:
        """A lowercase DNS label: letters, digits and '-', at most `max_length` characters."""
        return dns_label(f"{self.prefix}-{component}", max_length)

    def alnum(self, component: str, max_length: int = 50) -> str:
        """Letters and digits only (Azure Container Registry, storage accounts)."""
        return _fit(_NOT_ALNUM.sub("", f"{self.prefix}{component}".lower()), max_length)


def dns_label(text: str, max_length: int = 63) -> str:
    """Lowercase, non-alphanumerics to '-', trimmed; too long names keep a stable hash suffix."""
    label = _NOT_DNS.sub("-", text.lower()).strip("-")
    label = re.sub(r"-{2,}", "-", label)
    if not label or not label[0].isalpha():
        label = f"x-{label}".rstrip("-")
    return _fit(label, max_length).rstrip("-")


def _fit(text: str, max_length: int) -> str:
    if len(text) <= max_length:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:6]
    return f"{text[: max_length - 7].rstrip('-')}-{digest}" if "-" in text else f"{text[: max_length - 6]}{digest}"
