"""One tag set for every resource, in each cloud's flavour (AWS/Azure tags, GCP labels)."""

from __future__ import annotations

import re
from collections.abc import Mapping

_GCP_INVALID = re.compile(r"[^a-z0-9_-]+")


def standard_tags(
    *, project: str, stack: str, cloud: str, owner: str, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The tags every resource carries: what it belongs to, who owns it, which tool manages it."""
    return {
        "project": project,
        "stack": stack,
        "cloud": cloud,
        "owner": owner,
        "managed-by": "pulumi",
        "component": "llm-router",
        **(extra or {}),
    }


def gcp_labels(tags: Mapping[str, str]) -> dict[str, str]:
    """GCP labels: lowercase keys and values of [a-z0-9_-], keys starting with a letter, at most 63 chars."""
    labels: dict[str, str] = {}
    for key, value in tags.items():
        k = _GCP_INVALID.sub("_", key.lower()).strip("_")[:63]
        if not k or not k[0].isalpha():
            k = f"k_{k}"[:63]
        labels[k] = _GCP_INVALID.sub("_", value.lower())[:63]
    return labels
