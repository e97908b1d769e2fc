"""The nf_tables batch security groups compile to (no kernel needed): what
each rule becomes, and that a batch touches only its own ports."""

from __future__ import annotations

import json

from pyct_driver.virt.network import secgroup_nft
from pyct_driver.virt.port_filter import FilterRule, PortFilter

A = "aaaaaaaa-0000-0000-0000-000000000000"
B = "bbbbbbbb-0000-0000-0000-000000000000"


def _port(port_id, *rules):
    return PortFilter(port_id, "10.0.0.5", "10.0.0.1", tuple(rules))


def _rules_of(batch, chain):
    return [c["add"]["rule"]["expr"] for c in batch
            if "rule" in c.get("add", {})
            and c["add"]["rule"]["chain"] == chain]


def test_rules_compile_to_matches_and_verdicts():
    batch = secgroup_nft.commands([_port(
        A, FilterRule("ingress", "tcp", 80, 90, ("10.1.0.0/16",
                                                 "10.2.0.7/32")),
        FilterRule("ingress", "icmp", 8, None, None),
        FilterRule("egress"), FilterRule("ingress", remotes=()))])
    ingress = _rules_of(batch, f"in-{A}")
    text = json.dumps(ingress)
    assert '"range": [80, 90]' in text
    assert '{"prefix": {"addr": "10.1.0.0", "len": 16}}' in text
    assert '"10.2.0.7"' in text
    assert ingress[-1] == [{"drop": None}]
    # the empty remote group matches nothing: no rule for it
    assert len(ingress) == 3 + 2 + 1
    egress = _rules_of(batch, f"eg-{A}")
    assert [{"return": None}] in egress and egress[-1] == [{"drop": None}]


def test_a_batch_removes_only_its_own_ports_that_went():
    batch = secgroup_nft.commands([_port(B)], previous=[A, B])
    deleted = [c["delete"] for c in batch if "delete" in c]
    assert {d["chain"]["name"] for d in deleted if "chain" in d} == {
        f"in-{A}", f"eg-{A}"}
    assert all(A[:11] in json.dumps(d) for d in deleted)
    # no table is deleted: other pycts' ports on the kernel stay
    assert not [d for d in deleted if "table" in d]
