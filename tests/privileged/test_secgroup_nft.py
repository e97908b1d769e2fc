"""Security-group enforcement in the real kernel: pyct's nf_tables
compiler and binding between guest namespaces on one bridge (sg_lab),
with real TCP connections: the default group, a rule added and removed,
stateful replies, egress removal, another project's guest, and the
kernel's own listing of pyct's tables."""

from __future__ import annotations

import pytest

from pyct_driver.virt.port_filter import FilterRule as R
from tests.privileged.sg_lab import GATEWAY, Held, SgLab, connect

PORT = 7000


@pytest.fixture
def lab():
    lab = SgLab(3)
    try:
        for guest in lab.guests:
            guest.serve(PORT)
        yield lab
    finally:
        lab.close()


def _default(*members):
    return [R("ingress", remotes=tuple(g.ip for g in members)),
            R("egress")]


def test_default_group_and_rules(lab):
    a, b, other = lab.guests
    assert connect(other, b.ip, PORT)  # unfiltered before
    web = [R("egress"), R("ingress", "tcp", PORT, PORT, ("10.248.1.0/24",))]
    seconds = lab.apply({a: _default(a, b), b: _default(a, b),
                         other: web})
    assert seconds < 1
    assert connect(a, b.ip, PORT)          # same group
    assert not connect(other, b.ip, PORT)  # another group / project
    assert not connect(other, a.ip, PORT)
    # stateful: b's reply to a's connection passes b's ingress rules
    assert connect(a, other.ip, PORT)

    lab.apply({a: _default(a, b),
               b: _default(a, b) + [R("ingress", "tcp", PORT, PORT,
                                      (other.ip + "/32",))],
               other: web})
    assert connect(other, b.ip, PORT)
    held = Held(other, b.ip, PORT)
    lab.apply({a: _default(a, b), b: _default(a, b), other: web})
    assert not connect(other, b.ip, PORT)
    assert held.alive()  # the established connection keeps working


def test_egress_removal_and_ranges(lab):
    a, b, c = lab.guests
    lab.apply({a: [R("ingress", remotes=(b.ip,))], b: _default(a, b),
               c: [R("ingress", "tcp", 6000, 8000, None)]})
    assert not connect(a, b.ip, PORT)  # a has no egress rule
    assert connect(b, a.ip, PORT)      # a's ingress lets b in
    assert connect(b, c.ip, PORT)      # within c's port range
    lab.apply({a: [R("ingress", remotes=(b.ip,))], b: _default(a, b),
               c: [R("ingress", "tcp", 7001, 8000, None)]})
    assert not connect(b, c.ip, PORT)  # just outside it
    lab.apply({a: [], b: [], c: []})
    assert not connect(b, c.ip, PORT)
    assert not connect(a, b.ip, PORT)


def test_remote_group_with_no_members_matches_nothing(lab):
    a, b, _ = lab.guests
    lab.apply({b: [R("ingress", remotes=()), R("egress")]})
    assert not connect(a, b.ip, PORT)
    lab.apply({})
    assert connect(a, b.ip, PORT)


def test_membership_changes_touch_only_the_group_set(lab, tmp_path):
    """The compute service's incremental path: a member joining or
    leaving the default group changes its set, not the other members'
    chains (their rule handles stay); leaving ports' chains go."""
    a, b, c = lab.guests

    def default(*members):
        return [R("ingress", remotes=tuple(g.ip for g in members),
                  remote_group="g-default"), R("egress")]
    with lab.stateful(str(tmp_path / "filters.json")) as apply:
        apply({a: default(a, b), b: default(a, b)})
        assert connect(a, b.ip, PORT) and not connect(c, b.ip, PORT)
        assert "set rg-g-default" in lab.ruleset()
        handles = lab.handles(f"in-{b.port_id}")
        apply({g: default(a, b, c) for g in (a, b, c)})
        assert connect(c, b.ip, PORT) and connect(b, c.ip, PORT)
        assert lab.handles(f"in-{b.port_id}") == handles
        apply({a: default(a, b), b: default(a, b)})
        assert not connect(c, b.ip, PORT)
        assert f"in-{c.port_id}" not in lab.ruleset()
        assert lab.handles(f"in-{b.port_id}") == handles
        apply({})
    assert "pyct_sg" not in lab.ruleset()


def test_tables_are_pyct_owned_and_only_our_ports_change(lab):
    a, b, _ = lab.guests
    lab.host_exec("nft", "add", "table", "bridge", "someone_else")
    lab.apply({a: _default(a, b), b: _default(a, b)})
    first = lab.ruleset()
    assert "table bridge pyct_sg" in first and "table inet pyct_sg" in first
    assert f"in-{a.port_id}" in first
    lab.apply({b: _default(a, b)})
    second = lab.ruleset()
    assert f"in-{a.port_id}" not in second  # a's chains went with it
    assert "table bridge someone_else" in second
    assert GATEWAY in second
    # another pyct's ports on the same kernel keep their filters
    lab.applied = set()
    lab.apply({a: _default(a, b)})
    assert f"in-{b.port_id}" in lab.ruleset()
    assert not connect(lab.guests[2], b.ip, PORT)


def test_the_tables_go_with_the_last_filtered_port(lab):
    """A host with no filtered port holds no pyct_sg table (the leak
    check's view too): the last port's removal drops both tables, unless
    another pyct on the kernel still has ports in them."""
    a, b, _ = lab.guests
    lab.apply({a: _default(a, b), b: _default(a, b)})
    lab.applied = {a.port_id}  # b stands for another pyct's port
    lab.apply({})
    kept = lab.ruleset()
    assert f"in-{b.port_id}" in kept and f"in-{a.port_id}" not in kept
    lab.applied = {b.port_id}
    lab.apply({})
    assert "pyct_sg" not in lab.ruleset()
    assert connect(a, b.ip, PORT)


def test_entries_removed_by_hand_neither_block_nor_linger(lab):
    """Someone deleted pyct's tables by hand: the next update writes the
    current ports and skips what is gone already, and removing the last
    port is not an error either."""
    a, b, c = lab.guests
    lab.apply({a: _default(a, b), b: _default(a, b)})
    for family in ("bridge", "inet"):
        lab.host_exec("nft", "delete", "table", family, "pyct_sg")
    lab.apply({b: _default(a, b)})  # a's entries were in the lost tables
    rules = lab.ruleset()
    assert f"in-{b.port_id}" in rules and f"in-{a.port_id}" not in rules
    assert not connect(c, b.ip, PORT) and connect(a, b.ip, PORT)
    for family in ("bridge", "inet"):
        lab.host_exec("nft", "delete", "table", family, "pyct_sg")
    lab.apply({})
    assert "pyct_sg" not in lab.ruleset()
