"""Security groups in nf_tables: stateful filtering on each guest port, each
change one kernel transaction.

Guests of one project talk through their project's Linux bridge, so the
filter must see bridged frames and know their bridge ports: that is the
``bridge`` family (table ``bridge pyct_sg``), with chains on its
``forward`` (guest to guest), ``input`` (guest to the host, or routed out)
and ``output`` (host or routed traffic to a guest) hooks. Conntrack in the
bridge family needs nf_conntrack_bridge, which kernels may lack (this one:
``ct`` there fails with EPROTO), so connection state comes from the IP
layer instead: bridged IPv4 passes the ``inet`` hooks through br_netfilter
(pyct's bridges set ``nf_call_iptables``), where table ``inet pyct_sg``
tags packets of established or related connections with one skb mark bit
(``ESTABLISHED_MARK``) right after conntrack; the bridge chains, at a
later priority, accept tagged packets first. Each port has an egress chain
(from the guest: ``iifname``) that returns when a rule allows and drops
otherwise, and an ingress chain (to the guest: ``oifname``) that accepts
when a rule allows and drops otherwise; named verdict maps keyed on the
host-side veth name pick the chains, so the per-packet cost does not grow
with the number of ports. A remote group's members are one named set
(``rg-<group id>``) that its rules match, so membership changes are
element updates (``secgroup_delta`` writes only what changed). Links
are matched by name, so a port's filter is in place before its veth
exists. A batch rewrites the hook chains (static)
and the chains and map entries of the caller's ports, and removes those of
its ports that went; another pyct on the same kernel (parallel test
deployments) keeps its own ports' entries. ARP passes (the anti-spoofing
tc filter guards it); other non-IPv4 frames of a filtered port are
dropped. The host's own address on the network reaches a guest (the
operator's path in), and a guest always reaches the host's DNS forwarder
and the metadata service. Ports not in the set are not filtered. No other
table is touched.
"""

from __future__ import annotations

from typing import Iterable

from pyct_driver import exception
from pyct_driver.virt.network import nft
from pyct_driver.virt.network.names import veth_name
from pyct_driver.virt.port_filter import EGRESS, INGRESS, FilterRule, \
    PortFilter

FAMILY = "bridge"
TABLE = "pyct_sg"
METADATA_IP = "169.254.169.254"
# one skb mark bit: "this packet belongs to an established connection"
ESTABLISHED_MARK = 0x00200000
# after conntrack (-200) in inet; after br_netfilter's hooks in bridge
INET_PRIO = -150
BRIDGE_PRIO = 100
EGRESS_MAP, INGRESS_MAP = "egress_ports", "ingress_ports"
_T = {"family": FAMILY, "table": TABLE}


def _match(left: dict, right, op: str = "==") -> dict:
    return {"match": {"op": op, "left": left, "right": right}}


def _meta(key: str) -> dict:
    return {"meta": {"key": key}}


def _ip(field: str) -> dict:
    return {"payload": {"protocol": "ip", "field": field}}


def _addr(text: str):
    if "/" not in text:
        return text
    addr, length = text.split("/")
    if length == "32":
        return addr
    return {"prefix": {"addr": addr, "len": int(length)}}


_ESTABLISHED = _match({"ct": {"key": "state"}},
                      ["established", "related"], "in")
_TAGGED = _match({"&": [_meta("mark"), ESTABLISHED_MARK]},
                 ESTABLISHED_MARK)


def _rule(chain: str, *expr: dict) -> dict:
    return {"add": {"rule": dict(_T, chain=chain, expr=list(expr))}}


def _proto_matches(rule: FilterRule) -> list[dict]:
    if rule.protocol is None:
        return []
    out = [_match(_ip("protocol"), rule.protocol)]
    low, high = rule.port_min, rule.port_max
    if rule.protocol == "icmp":
        if low is not None:
            out.append(_match({"payload": {"protocol": "icmp",
                                           "field": "type"}}, low))
        if high is not None:
            out.append(_match({"payload": {"protocol": "icmp",
                                           "field": "code"}}, high))
    elif low is not None:
        dport = {"payload": {"protocol": rule.protocol, "field": "dport"}}
        high = low if high is None else high
        out.append(_match(dport, low if low == high
                          else {"range": [low, high]}))
    return out


def group_set(group_id: str) -> str:
    """The named set holding a remote group's member addresses."""
    return "rg-" + group_id


def groups_of(ports: Iterable[PortFilter]) -> dict[str, frozenset[str]]:
    """The remote groups ``ports`` name and their members' addresses
    (the same for every port naming a group: read once)."""
    out: dict[str, frozenset[str]] = {}
    for port in ports:
        for rule in port.rules:
            if rule.remote_group is not None \
                    and rule.remote_group not in out:
                out[rule.remote_group] = frozenset(rule.remotes or ())
    return out


def _rule_matches(rule: FilterRule, peer: str) -> list[dict] | None:
    """The expressions of one rule (``peer``: the other end's address
    field), or None when it can match nothing (an empty address list)."""
    out = []
    if rule.remote_group is not None:
        out.append(_match(_ip(peer), "@" + group_set(rule.remote_group)))
    elif rule.remotes is not None:
        if not rule.remotes:
            return None
        out.append(_match(_ip(peer), {"set": [
            _addr(r) for r in sorted(set(rule.remotes))]}))
    return out + _proto_matches(rule)


def chain_names(port_id: str) -> tuple[str, str]:
    return f"in-{port_id}", f"eg-{port_id}"


def _port_commands(port: PortFilter) -> list[dict]:
    ingress, egress = chain_names(port.port_id)
    out = []
    arp = _match(_meta("protocol"), "arp")
    not_ip = _match(_meta("protocol"), "ip", "!=")
    out += [_rule(ingress, arp, {"accept": None}),
            _rule(ingress, not_ip, {"drop": None}),
            _rule(ingress, _match(_ip("saddr"), port.gateway),
                  {"accept": None}),
            _rule(egress, arp, {"return": None}),
            _rule(egress, not_ip, {"drop": None})]
    for rule in port.rules:
        inbound = rule.direction == INGRESS
        matches = _rule_matches(rule, "saddr" if inbound else "daddr")
        if matches is not None:
            out.append(_rule(ingress if inbound else egress, *matches,
                             {"accept": None} if inbound
                             else {"return": None}))
    out += [_rule(ingress, {"drop": None}), _rule(egress, {"drop": None})]
    return out


def _base_chain(name: str, hook: str, family: str = FAMILY,
                prio: int = BRIDGE_PRIO) -> list[dict]:
    """A hook chain made if missing and emptied, so its static rules can
    be written again by every batch (idempotent, atomic)."""
    chain = {"family": family, "table": TABLE, "name": name}
    return [{"add": {"chain": dict(chain, type="filter", hook=hook,
                                   prio=prio, policy="accept")}},
            {"flush": {"chain": chain}}]


def _inet_commands() -> list[dict]:
    """The IP-layer half: tag packets of known connections."""
    tag = {"mangle": {"key": _meta("mark"), "value": {
        "|": [_meta("mark"), ESTABLISHED_MARK]}}}
    out: list[dict] = [{"add": {"table": {"family": "inet",
                                          "name": TABLE}}}]
    for hook in ("prerouting", "output"):
        out += _base_chain(hook, hook, "inet", INET_PRIO)
        out.append({"add": {"rule": {
            "family": "inet", "table": TABLE, "chain": hook,
            "expr": [_ESTABLISHED, tag]}}})
    return out


def _vmap(key: str, name: str) -> dict:
    return {"vmap": {"key": _meta(key), "data": "@" + name}}


def _services() -> list[dict]:
    """The host services every guest may use whatever its egress rules:
    DNS on the gateway and the metadata service."""
    dns = [_match(_ip("protocol"), {"set": ["udp", "tcp"]}),
           _match({"payload": {"protocol": "th", "field": "dport"}}, 53)]
    meta = [_match(_ip("daddr"), METADATA_IP),
            _match(_ip("protocol"), "tcp")]
    return [_rule("input", *dns, {"accept": None}),
            _rule("input", *meta, {"accept": None})]


def _skeleton() -> list[dict]:
    out = _inet_commands() + [{"add": {"table": {"family": FAMILY,
                                                 "name": TABLE}}}]
    for name in (EGRESS_MAP, INGRESS_MAP):
        out.append({"add": {"map": dict(_T, name=name, type="ifname",
                                        map="verdict")}})
    for name in ("forward", "input", "output"):
        out += _base_chain(name, name)
        out.append(_rule(name, _TAGGED, {"accept": None}))
    out += _services()
    out += [_rule("forward", _vmap("iifname", EGRESS_MAP)),
            _rule("forward", _vmap("oifname", INGRESS_MAP)),
            _rule("input", _vmap("iifname", EGRESS_MAP)),
            _rule("output", _vmap("oifname", INGRESS_MAP))]
    return out


def _element(verb: str, name: str, port_id: str, chain: str | None
             ) -> dict:
    key = veth_name(port_id)
    elem = [key, {"jump": {"target": chain}}] if chain else key
    return {verb: {"element": dict(_T, name=name, elem=[elem])}}


def port_block(port: PortFilter) -> list[dict]:
    """(Re)write one port's chains and its verdict-map entries."""
    ingress, egress = chain_names(port.port_id)
    out = []
    for chain in (ingress, egress):
        out.append({"add": {"chain": dict(_T, name=chain)}})
        out.append({"flush": {"chain": dict(_T, name=chain)}})
    out += _port_commands(port)
    out.append(_element("add", EGRESS_MAP, port.port_id, egress))
    out.append(_element("add", INGRESS_MAP, port.port_id, ingress))
    return out


def port_removal(port_id: str) -> list[dict]:
    """Remove one port's map entries and chains."""
    out = [_element("delete", EGRESS_MAP, port_id, None),
           _element("delete", INGRESS_MAP, port_id, None)]
    for chain in chain_names(port_id):
        out.append({"delete": {"chain": dict(_T, name=chain)}})
    return out


def set_elements(verb: str, group_id: str, addrs: Iterable[str]
                 ) -> list[dict]:
    """Add (``verb`` "add") or remove ("delete") members of a group's
    set; nothing when ``addrs`` is empty."""
    addrs = sorted(addrs)
    if not addrs:
        return []
    return [{verb: {"element": dict(_T, name=group_set(group_id),
                                    elem=addrs)}}]


def set_block(group_id: str, addrs: Iterable[str]) -> list[dict]:
    """Make a group's set exactly ``addrs``."""
    name = dict(_T, name=group_set(group_id))
    return ([{"add": {"set": dict(name, type="ipv4_addr")}},
             {"flush": {"set": name}}] + set_elements("add", group_id, addrs))


def set_removal(group_id: str) -> list[dict]:
    return [{"delete": {"set": dict(_T, name=group_set(group_id))}}]


def commands(ports: Iterable[PortFilter],
             previous: Iterable[str] = (),
             previous_groups: Iterable[str] = ()) -> list[dict]:
    """The batch that makes ``ports`` exactly this driver's filtered
    ports: theirs (re)written, those of ``previous`` (port ids this
    driver filtered before) no longer in the set removed, and the sets of
    ``previous_groups`` no port names any more; other ports' chains
    (another pyct on the same kernel, e.g. tests) are untouched."""
    ports = sorted(ports, key=lambda p: p.port_id)
    groups = groups_of(ports)
    out = _skeleton()
    # sets before the rules that name them, deleted after the last rule
    for group_id, addrs in sorted(groups.items()):
        out += set_block(group_id, addrs)
    for port in ports:
        out += port_block(port)
    keep = {p.port_id for p in ports}
    for port_id in sorted(set(previous) - keep):
        out += port_removal(port_id)
    for group_id in sorted(set(previous_groups) - set(groups)):
        out += set_removal(group_id)
    return out


def apply(ports: Iterable[PortFilter], previous: Iterable[str] = (),
          previous_groups: Iterable[str] = ()) -> set[str]:
    """Enforce ``ports``' filters, atomically; the port ids now filtered
    (the next call's ``previous``)."""
    ports = list(ports)
    if not ports:
        _drop(previous, previous_groups)
        return set()
    try:
        nft.apply(commands(ports, previous, previous_groups))
    except exception.NetworkError:
        if not previous and not previous_groups:
            raise
        # some of what went was removed by someone else (the table deleted
        # by hand): write the current set, then remove what is left
        nft.apply(commands(ports))
        keep = {p.port_id for p in ports}
        _remove(set(previous) - keep,
                set(previous_groups) - set(groups_of(ports)))
    return {p.port_id for p in ports}


def _remove(port_ids: Iterable[str], group_ids: Iterable[str]) -> None:
    """Remove ports' chains and groups' sets in one batch or, when the
    kernel refuses it because some are gone already, one at a time."""
    port_ids, group_ids = sorted(port_ids), sorted(group_ids)
    if not port_ids and not group_ids:
        return
    try:
        nft.apply(commands([], port_ids, group_ids))
        return
    except exception.NetworkError:
        pass
    # sets after the rules that name them
    for block in ([port_removal(p) for p in port_ids]
                  + [set_removal(g) for g in group_ids]):
        try:
            nft.apply(block)
        except exception.NetworkError:  # gone already
            pass


def _drop(previous: Iterable[str], previous_groups: Iterable[str]) -> None:
    """No port of this driver filtered: its entries go, and the tables
    with them once no other pyct on the kernel has a port in them (a host
    without filtered ports holds no pyct_sg table)."""
    _remove(previous, previous_groups)
    try:
        listing = nft.list_ruleset({"family": FAMILY, "name": TABLE})
    except exception.NetworkError:  # no table: nothing to drop
        return
    if not any(item.get("map", {}).get("elem")
               for item in listing.get("nftables", [])):
        remove()


def remove() -> None:
    """Drop both tables (no port filtered any more)."""
    out = []
    for family in (FAMILY, "inet"):
        table = {"family": family, "name": TABLE}
        out += [{"add": {"table": table}}, {"delete": {"table": table}}]
    nft.apply(out)
