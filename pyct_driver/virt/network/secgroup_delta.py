"""The host's security-group filters kept in step with the database by
small kernel transactions: only what changed since the last one.

The compute service hands the driver the host's whole set of port filters
on every change (a build, a delete, a rule or membership change), which
makes a lost or repeated refresh harmless. Rewriting every port's chains
each time made one build cost O(ports) in nf_tables work, and with the
default group (each member admits the others) O(ports²) addresses. So
the set last written is remembered here: a port's chains are rewritten
only when its rules changed, a remote group's members are added to or
removed from that group's named set, and ports and sets that went are
deleted. The first call in a process, and any call whose delta the
kernel refuses (someone removed the table by hand), write the whole set.
The port ids and set names this driver owns are kept in a JSON file, so
a restarted service still removes what it wrote.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Iterable

from pyct_driver import exception
from pyct_driver.virt.network import nft, secgroup_nft
from pyct_driver.virt.port_filter import FilterRule, PortFilter


def shape(port: PortFilter, memo: dict[int, FilterRule] | None = None
          ) -> PortFilter:
    """A port's filter without its remote groups' members (those live in
    the groups' sets): equal shapes need no chain rewrite. ``memo`` keeps
    one shape per rule object across the ports sharing it."""
    memo = {} if memo is None else memo
    rules = []
    for rule in port.rules:
        if id(rule) not in memo:
            memo[id(rule)] = (dataclasses.replace(rule, remotes=None)
                              if rule.remote_group else rule)
        rules.append(memo[id(rule)])
    return PortFilter(port.port_id, port.ip, port.gateway, tuple(rules))


def delta(ports: Iterable[PortFilter], applied: dict[str, PortFilter],
          groups_before: dict[str, frozenset[str]],
          shapes: dict[str, PortFilter] | None = None) -> list[dict]:
    """The batch that turns the kernel's state (``applied``: port id →
    ``shape``, and ``groups_before`` sets) into ``ports`` (``shapes``:
    theirs, when known); empty when nothing changed."""
    ports = sorted(ports, key=lambda p: p.port_id)
    groups = secgroup_nft.groups_of(ports)
    out: list[dict] = []
    for group_id, addrs in sorted(groups.items()):
        old = groups_before.get(group_id)
        if old is None:
            out += secgroup_nft.set_block(group_id, addrs)
            continue
        out += secgroup_nft.set_elements("delete", group_id, old - addrs)
        out += secgroup_nft.set_elements("add", group_id, addrs - old)
    memo: dict[int, FilterRule] = {}
    for port in ports:
        now = shapes[port.port_id] if shapes else shape(port, memo)
        if applied.get(port.port_id) != now:
            out += secgroup_nft.port_block(port)
    for port_id in sorted(set(applied) - {p.port_id for p in ports}):
        out += secgroup_nft.port_removal(port_id)
    for group_id in sorted(set(groups_before) - set(groups)):
        out += secgroup_nft.set_removal(group_id)
    return out


class FilterState:
    """What one driver has written to the kernel's ``pyct_sg`` tables."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._ports: dict[str, PortFilter] | None = None
        self._groups: dict[str, frozenset[str]] = {}

    def apply(self, filters: Iterable[PortFilter]) -> None:
        """Make the kernel enforce exactly ``filters``."""
        ports = list(filters)
        groups = secgroup_nft.groups_of(ports)
        before = self._owned()
        memo: dict[int, FilterRule] = {}
        shapes = {p.port_id: shape(p, memo) for p in ports}
        if self._ports is None or not ports:
            secgroup_nft.apply(ports, *before)
        else:
            batch = delta(ports, self._ports, self._groups, shapes)
            try:
                if batch:
                    nft.apply(batch)
            except exception.NetworkError:
                secgroup_nft.apply(ports, *before)
        self._ports = shapes
        self._groups = groups
        owned = (sorted(self._ports), sorted(groups))
        if owned != before:
            self._record(owned)

    def _owned(self) -> tuple[list[str], list[str]]:
        if self._ports is not None:
            return sorted(self._ports), sorted(self._groups)
        try:
            with open(self.path) as f:
                saved = json.load(f)
        except (OSError, ValueError):
            return [], []
        if isinstance(saved, list):  # before groups had sets
            return sorted(saved), []
        return sorted(saved.get("ports", [])), sorted(saved.get("groups", []))

    def _record(self, owned: tuple[list[str], list[str]]) -> None:
        try:
            with open(self.path + ".tmp", "w") as f:
                json.dump({"ports": owned[0], "groups": owned[1]}, f)
            os.replace(self.path + ".tmp", self.path)
        except OSError as err:
            raise exception.NetworkError(
                reason=f"cannot record the filtered ports: {err}") from err
