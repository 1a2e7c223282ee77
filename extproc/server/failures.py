"""What this controller saw of each request's attempts, to count fallbacks with why each target was left.

An attempt whose connection failed never reaches an upstream filter, so the next attempt that does reach us
accounts for the hops in between. Bounded: the oldest requests are forgotten first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

MAX_REQUESTS = 10_000
CONNECT_FAILURE = "connect_failure"  # the attempt got no response at all
# A first attempt the router's ext_proc prepared (no upstream exchange saw it): Envoy retried it, for a
# connect failure or a retriable status, the controller cannot tell which.
RETRIED = "retried"
UNSEEN_FAILURES = (CONNECT_FAILURE, RETRIED)


def unseen_failure(number: int, first_prepared: bool) -> str:
    """Why attempt `number`, which this controller never saw answered, was left."""
    return RETRIED if number == 1 and first_prepared else CONNECT_FAILURE


class AttemptLog:
    def __init__(self) -> None:
        self._seen: OrderedDict[str, tuple[int, int]] = OrderedDict()  # request id -> (attempt, status)

    def hops(
        self, request_id: str, attempt: int, chain: Sequence[str], first_prepared: bool = False
    ) -> list[tuple[str, str, str]]:
        """(from, to, reason) for every fallback between the last attempt seen and `attempt`."""
        seen_attempt, seen_status = self._seen.pop(request_id, (0, 0))
        self._remember(request_id, attempt, 0)
        hops = []
        for number in range(max(seen_attempt, 1), min(attempt, len(chain))):
            saw_response = number == seen_attempt and seen_status
            hops.append(
                (
                    chain[number - 1],
                    chain[number],
                    f"status_{seen_status}" if saw_response else unseen_failure(number, first_prepared),
                )
            )
        return hops

    def response(self, request_id: str, attempt: int, status: int) -> None:
        self._seen.pop(request_id, None)
        self._remember(request_id, attempt, status)

    def _remember(self, request_id: str, attempt: int, status: int) -> None:
        self._seen[request_id] = (attempt, status)
        while len(self._seen) > MAX_REQUESTS:
            self._seen.popitem(last=False)
