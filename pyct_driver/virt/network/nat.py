"""Outbound NAT and floating IPs: pyct's one nf_tables table, ``ip pyct_nat``.

While any project network of the host has egress NAT (``egress_nat``) or
a floating IP, the table holds::

    set egress   the bridges (pyb-…) whose guests may leave the host
    set bridged  (bridge, bridge) of each: frames between two guests of
                 one bridge, which pass the IP hooks too where
                 br_netfilter is loaded (bridge-nf-call-iptables)
    map fip_in   floating IP -> fixed IP   (DNAT on the external interface)
    map fip_out  fixed IP -> floating IP   (SNAT, before masquerading)
    input        from one of them, only the addresses ON that bridge (its
                 gateway, the metadata address) reach the host's stack:
                 the host's other addresses (uplink, external, other
                 bridges' gateways) are dropped, whatever the guest's
                 port filter lets be routed
    forward      within one bridge (``bridged``): accept; a bridge in
                 ``egress`` to the external interface: accept;
                 anything else from one (another project's bridge, another
                 uplink): drop; towards one only replies (conntrack) and
                 floating-IP (DNATed) traffic arriving on the external
                 interface; everything else to one: drop
    prerouting   DNAT: floating IP -> fixed IP, on the external interface
    postrouting  SNAT: a fixed IP with a floating IP leaves as it, other
                 traffic of an egress bridge is masqueraded to the
                 external interface's address

Networks and floating IPs come and go as set and map elements: one atomic
batch each, no rule is ever rewritten. The table is removed when the last
element goes, so a host without NAT has no pyct table (the leak check
counts a leftover one). The first change made by this process rebuilds
the table keeping its elements, so a restart with another external
interface does not keep stale rules. Only this table is ever touched,
and its rules match only its own bridges: other tables' chains on the same
hooks still decide for themselves (an accept here does not override a drop
elsewhere). Bridges of a deployment without NAT do not forward at all.
Tests name their own table (``name``) so that they can run beside a
deployment.
"""

from __future__ import annotations

import ipaddress
import threading

from pyct_driver import exception
from pyct_driver.virt.network import nft

FAMILY = "ip"
NAME = "pyct_nat"
_SETS = ("egress", "bridged", "fip_in", "fip_out")


def _meta(key: str, value: str, op: str = "==") -> dict:
    return {"match": {"op": op, "left": {"meta": {"key": key}},
                      "right": value}}


def _ct(key: str, value: list[str] | str) -> dict:
    return {"match": {"op": "in", "left": {"ct": {"key": key}},
                      "right": value}}


def _map(field: str, name: str) -> dict:
    return {"addr": {"map": {
        "key": {"payload": {"protocol": "ip", "field": field}},
        "data": f"@{name}"}}}


def table_commands(external: str, name: str = NAME) -> list[dict]:
    """The table ``name``, its sets, chains and rules, for ``external``."""
    base = {"family": FAMILY, "table": name}

    def _chain(hook: str, kind: str, prio: int) -> dict:
        return {"add": {"chain": dict(base, name=hook, type=kind, hook=hook,
                                      prio=prio, policy="accept")}}

    def _rule(chain: str, *expr: dict) -> dict:
        return {"add": {"rule": dict(base, chain=chain, expr=list(expr))}}

    bridges = "@egress"
    accept, drop = {"accept": None}, {"drop": None}
    return [
        {"add": {"table": {"family": FAMILY, "name": name}}},
        {"add": {"set": dict(base, name="egress", type="ifname")}},
        {"add": {"set": dict(base, name="bridged",
                             type=["ifname", "ifname"])}},
        {"add": {"map": dict(base, name="fip_in", type="ipv4_addr",
                             map="ipv4_addr")}},
        {"add": {"map": dict(base, name="fip_out", type="ipv4_addr",
                             map="ipv4_addr")}},
        _chain("input", "filter", 0),
        _chain("forward", "filter", 0),
        _chain("prerouting", "nat", -100),
        _chain("postrouting", "nat", 100),
        _rule("input", _meta("iifname", bridges),
              {"match": {"op": "!=", "left": {"fib": {
                  "result": "type", "flags": ["daddr", "iif"]}},
                  "right": "local"}}, drop),
        _rule("forward", {"match": {"op": "==", "left": {"concat": [
            {"meta": {"key": "iifname"}}, {"meta": {"key": "oifname"}}]},
            "right": "@bridged"}}, accept),
        _rule("forward", _meta("iifname", bridges),
              _meta("oifname", external), accept),
        _rule("forward", _meta("iifname", bridges), drop),
        _rule("forward", _meta("oifname", bridges),
              _ct("state", ["established", "related"]), accept),
        _rule("forward", _meta("oifname", bridges),
              _meta("iifname", external), _ct("status", "dnat"), accept),
        _rule("forward", _meta("oifname", bridges), drop),
        _rule("prerouting", _meta("iifname", external),
              {"dnat": _map("daddr", "fip_in")}),
        _rule("postrouting", _meta("oifname", external),
              _meta("iifname", bridges),
              {"snat": _map("saddr", "fip_out")}),
        _rule("postrouting", _meta("oifname", external),
              _meta("iifname", bridges), {"masquerade": None}),
    ]


def _elements(listing: dict) -> dict[str, list]:
    """Each set's or map's elements in a ``list_ruleset`` answer."""
    found: dict[str, list] = {name: [] for name in _SETS}
    for item in listing.get("nftables", []):
        for kind in ("set", "map"):
            body = item.get(kind)
            if body and body.get("name") in found:
                found[body["name"]] = list(body.get("elem", []))
    return found


def _address(value: str) -> str:
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError as err:
        raise exception.NetworkError(reason=f"bad address {value!r}") from err


class Nat:
    """The table ``name`` for one external interface (``external``)."""

    def __init__(self, external: str, name: str = NAME) -> None:
        if not external:
            raise exception.NetworkError(
                reason="egress NAT needs [network] external_interface")
        self.external = external
        self.name = name
        self.table = {"family": FAMILY, "name": name}
        self._t = {"family": FAMILY, "table": name}
        self._lock = threading.Lock()
        self._fresh = False

    def _current(self) -> dict[str, list] | None:
        try:
            return _elements(nft.list_ruleset(self.table))
        except exception.NftError:
            return None  # no such table

    def _change(self, op: str, changes: list[tuple[str, list]]) -> None:
        """Element changes (set name, elements), in one batch; the table
        made (or rebuilt) first."""
        with self._lock:
            now = self._current()
            if op == "delete":
                if now is None:
                    return
                changes = [(name, [e for e in elem if e in now[name]])
                           for name, elem in changes]
                changes = [(name, elem) for name, elem in changes if elem]
                for name, elem in changes:
                    now[name] = [e for e in now[name] if e not in elem]
                if not any(now.values()):  # the last one: no table at all
                    nft.apply([{"delete": {"table": dict(self.table)}}])
                    return
            batch: list[dict] = []
            if op == "add" and (now is None or not self._fresh):
                if now is not None:
                    batch.append({"delete": {"table": dict(self.table)}})
                batch += table_commands(self.external, self.name)
                for kept, items in (now or {}).items():
                    if items:
                        batch.append({"add": {"element": dict(
                            self._t, name=kept, elem=items)}})
            nft.apply(batch + [
                {op: {"element": dict(self._t, name=name, elem=elem)}}
                for name, elem in changes])
            self._fresh = self._fresh or op == "add"
        if op == "add":
            _write_forwarding(self.external)

    def add_network(self, bridge: str) -> None:
        """Let the guests on ``bridge`` out (masqueraded)."""
        self._change("add", self._network(bridge))

    def remove_network(self, bridge: str) -> None:
        self._change("delete", self._network(bridge))

    @staticmethod
    def _network(bridge: str) -> list[tuple[str, list]]:
        return [("egress", [bridge]),
                ("bridged", [{"concat": [bridge, bridge]}])]

    def add_floating(self, floating_ip: str, fixed_ip: str) -> None:
        """1:1 NAT of ``floating_ip`` to the guest at ``fixed_ip``."""
        fip, fixed = _address(floating_ip), _address(fixed_ip)
        with self._lock:
            now = self._current() or {}
        for old_fip, old_fixed in now.get("fip_in", []):
            if old_fip == fip or old_fixed == fixed:
                self.remove_floating(old_fip, old_fixed)
        self._change("add", [("fip_in", [[fip, fixed]]),
                             ("fip_out", [[fixed, fip]])])

    def remove_floating(self, floating_ip: str, fixed_ip: str) -> None:
        fip, fixed = _address(floating_ip), _address(fixed_ip)
        self._change("delete", [("fip_in", [[fip, fixed]]),
                                ("fip_out", [[fixed, fip]])])

    def set_floating(self, mapping: dict[str, str]) -> None:
        """Make the floating IPs exactly ``mapping`` (floating ->
        fixed); nothing is written when they are already."""
        wanted = {_address(f): _address(x) for f, x in mapping.items()}
        have = self.floating()
        gone = [(f, x) for f, x in have.items() if wanted.get(f) != x]
        if gone:
            self._change("delete", [
                ("fip_in", [[f, x] for f, x in gone]),
                ("fip_out", [[x, f] for f, x in gone])])
        new = [(f, x) for f, x in wanted.items() if have.get(f) != x]
        if new:
            self._change("add", [
                ("fip_in", [[f, x] for f, x in new]),
                ("fip_out", [[x, f] for f, x in new])])

    def floating(self) -> dict[str, str]:
        """floating IP -> fixed IP, as the kernel has them."""
        with self._lock:
            now = self._current() or {}
        return {fip: fixed for fip, fixed in now.get("fip_in", [])}


def _write_forwarding(ifname: str) -> None:
    # Replies to masqueraded traffic arrive on the external interface and
    # are routed on to a bridge only if that interface forwards.
    path = f"/proc/sys/net/ipv4/conf/{ifname}/forwarding"
    try:
        with open(path, "w") as f:
            f.write("1")
    except OSError as err:
        raise exception.NetworkError(
            reason=f"external interface {ifname}: {err}") from err
