"""What one guest may cost the gateway's DNS forwarder (``dnsforward``).

A guest address may send ``rate`` queries a second, in bursts of twice
that (``Buckets``; more are dropped unanswered), and hold at most
``PENDING_PER_GUEST`` questions waiting upstream (``PENDING_TOTAL`` for
the host) and ``TCP_PER_GUEST`` TCP connections (``TCP_PER_NETWORK`` per
network, ``TCP_TOTAL`` for the host: each has a thread), each of which
must deliver every whole query within ``TCP_IDLE`` seconds. ``Holds``
counts what is held per guest, per network and in all. Whatever the
guests send, the forwarder reads at most ``NETWORK_BUDGET`` packets and
connections of one network per ``WINDOW`` seconds (20 guests at 100
queries a second): past that the kernel drops them, so a flood cannot
take the compute service's CPU, and slows only its own network.
"""

from __future__ import annotations

import collections

PENDING_PER_GUEST = 16
PENDING_TOTAL = 512
TCP_PER_GUEST = 2
TCP_PER_NETWORK = 8
TCP_TOTAL = 128
TCP_IDLE = 5.0
NETWORK_BUDGET = 200
WINDOW = 0.1
ALL = "*"


class Buckets:
    """A token bucket per guest address: ``rate`` a second, ``2*rate``
    deep. When there are many, those full again are forgotten."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.depth = 2 * rate
        self._tokens: dict[str, tuple[float, float]] = {}

    def take(self, key: str, now: float) -> bool:
        tokens, then = self._tokens.get(key, (self.depth, now))
        tokens = min(self.depth, tokens + (now - then) * self.rate)
        if len(self._tokens) > 4096:
            self._tokens = {k: v for k, v in self._tokens.items()
                            if v[0] + (now - v[1]) * self.rate < self.depth}
        if tokens < 1:
            self._tokens[key] = (tokens, now)
            return False
        self._tokens[key] = (tokens - 1, now)
        return True


class Holds:
    """Counts of what guests hold, by guest address, network and ``ALL``."""

    def __init__(self) -> None:
        self._counts: collections.Counter = collections.Counter()

    def count(self, key: str) -> int:
        return self._counts[key]

    def take(self, *keys: str) -> None:
        for key in keys + (ALL,):
            self._counts[key] += 1

    def give_back(self, *keys: str) -> None:
        for key in keys + (ALL,):
            self._counts[key] -= 1
            if self._counts[key] <= 0:
                del self._counts[key]
