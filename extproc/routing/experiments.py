"""A/B splits between strategies: each request gets an arm by weight, sticky per tenant or header value."""

from __future__ import annotations

import hashlib
import random
from bisect import bisect_right
from itertools import accumulate

from extproc.config.model import Experiment, ExperimentArm


class ExperimentSplit:
    def __init__(self, experiment: Experiment) -> None:
        self.experiment = experiment
        total = sum(arm.weight for arm in experiment.arms)
        self._bounds = [b / total for b in accumulate(arm.weight for arm in experiment.arms)]

    def arm_for(self, sticky_key: str | None) -> ExperimentArm:
        """The same key always gets the same arm; without a key, a random one by weight."""
        point = _fraction(sticky_key) if sticky_key else random.random()
        index = min(bisect_right(self._bounds, point), len(self._bounds) - 1)
        return self.experiment.arms[index]


def _fraction(key: str) -> float:
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64
