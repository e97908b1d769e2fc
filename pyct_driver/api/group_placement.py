"""How the scheduler honours a server group (the ``group`` hint).

``affinity``: every member on one host -- the host the existing members
are on, or the first new server's; ``anti-affinity``: no host gets more
than ``max_server_per_host`` (1 unless the 2.64 rule says otherwise) of
the group's members, so placing more than the hosts allow is NoValidHost.
The ``soft-`` policies filter nothing: they rank the fitting hosts, most
members first (soft-affinity) or fewest first (soft-anti-affinity),
before the scheduler's free-RAM weigher. Each placed server counts for
the next one of the same request.
"""

from __future__ import annotations

import collections


class GroupPlacement:
    def __init__(self, policy: str, rules: dict,
                 member_hosts: list[str]) -> None:
        self.policy = policy
        self.max_per_host = int(rules.get("max_server_per_host", 1))
        self.count = collections.Counter(h for h in member_hosts if h)

    def allowed(self, hosts: list[str]) -> list[str]:
        """The hosts the group's hard policy leaves."""
        if self.policy == "affinity" and self.count:
            return [h for h in hosts if h in self.count]
        if self.policy == "anti-affinity":
            return [h for h in hosts if self.count[h] < self.max_per_host]
        return hosts

    def rank(self, host: str) -> int:
        """Smaller first: the soft policies' preference."""
        if self.policy == "soft-affinity":
            return -self.count[host]
        if self.policy == "soft-anti-affinity":
            return self.count[host]
        return 0

    def placed(self, host: str) -> None:
        self.count[host] += 1
