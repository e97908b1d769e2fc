"""The nf_tables batch security groups compile to (no kernel needed): what
each rule becomes, and that a batch touches only its own ports."""

from __future__ import annotations

import json

from pyct_driver.virt.network import secgroup_delta, secgroup_nft
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


def _member_port(port_id, members):
    return PortFilter(port_id, "10.0.0.5", "10.0.0.1", (
        FilterRule("ingress", remotes=tuple(members), remote_group="g1"),
        FilterRule("egress")))


def test_a_remote_group_is_one_named_set_made_before_its_rules():
    batch = secgroup_nft.commands([_member_port(A, ["10.0.0.5"])])
    text = [json.dumps(c) for c in batch]
    made = next(i for i, t in enumerate(text) if '"set": {' in t
                and '"add"' in t)
    used = next(i for i, t in enumerate(text) if '"@rg-g1"' in t)
    assert made < used
    assert any('"elem": ["10.0.0.5"]' in t for t in text)


def test_a_member_joining_changes_the_set_and_adds_only_its_port():
    before = {A: secgroup_delta.shape(_member_port(A, ["10.0.0.5"]))}
    groups = {"g1": frozenset(["10.0.0.5"])}
    after = [_member_port(A, ["10.0.0.5", "10.0.0.6"]),
             _member_port(B, ["10.0.0.5", "10.0.0.6"])]
    batch = secgroup_delta.delta(after, before, groups)
    chains = {c["add"]["chain"]["name"] for c in batch
              if "chain" in c.get("add", {})}
    assert chains == {f"in-{B}", f"eg-{B}"}  # A's chains untouched
    elements = [c["add"]["element"] for c in batch
                if "element" in c.get("add", {})
                and c["add"]["element"]["name"] == "rg-g1"]
    assert elements == [dict(family="bridge", table="pyct_sg",
                             name="rg-g1", elem=["10.0.0.6"])]
    assert secgroup_delta.delta(after, {p.port_id: secgroup_delta.shape(p)
                                        for p in after},
                                {"g1": frozenset(["10.0.0.5", "10.0.0.6"])}
                                ) == []


def test_the_last_member_leaving_deletes_its_chains_then_the_set():
    before = {A: secgroup_delta.shape(_member_port(A, ["10.0.0.5"]))}
    batch = secgroup_delta.delta(
        [PortFilter(B, "10.0.0.6", "10.0.0.1", (FilterRule("egress"),))],
        before, {"g1": frozenset(["10.0.0.5"])})
    deletes = [c["delete"] for c in batch if "delete" in c]
    assert [d for d in deletes if "set" in d] == [deletes[-1]]
    assert {d["chain"]["name"] for d in deletes if "chain" in d} == {
        f"in-{A}", f"eg-{A}"}


def test_state_records_ports_and_sets_and_reads_the_old_format(tmp_path,
                                                             monkeypatch):
    path = tmp_path / "filters.json"
    path.write_text(json.dumps([A]))  # written before groups had sets
    sent = []
    monkeypatch.setattr(secgroup_delta.nft, "apply", sent.append)
    state = secgroup_delta.FilterState(str(path))
    state.apply([_member_port(B, ["10.0.0.6"])])
    assert any(f"in-{A}" in json.dumps(c) for c in sent[0]
               if "delete" in c)  # the old file's port went
    assert json.loads(path.read_text()) == {"ports": [B], "groups": ["g1"]}
    state.apply([_member_port(B, ["10.0.0.6"])])
    assert len(sent) == 1  # nothing changed: no kernel transaction
