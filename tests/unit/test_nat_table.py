"""The NAT table's bookkeeping (virt/network/nat.py) against a fake of the
``nft`` seam that keeps sets in memory: one batch per change, the table
made on first use and rebuilt (keeping its elements) by a new process,
removed with its last element. The kernel side: tests/privileged/
test_nat.py."""

from __future__ import annotations

import pytest

from pyct_driver import exception
from pyct_driver.virt.network import nat as nat_mod


class FakeNft:
    def __init__(self) -> None:
        self.tables: dict[str, dict[str, list]] = {}
        self.batches: list[list[dict]] = []

    def apply(self, commands: list[dict]) -> None:
        self.batches.append(commands)
        for cmd in commands:
            (op, body), = cmd.items()
            (kind, spec), = body.items()
            name = spec.get("table") or spec.get("name")
            if kind == "table":
                if op == "delete":
                    self.tables.pop(spec["name"])
                else:
                    self.tables.setdefault(spec["name"], {})
            elif kind in ("set", "map"):
                self.tables[spec["table"]].setdefault(spec["name"], [])
            elif kind == "element":
                elems = self.tables[name][spec["name"]]
                for e in spec["elem"]:
                    if op == "add" and e not in elems:
                        elems.append(e)
                    elif op == "delete":
                        elems.remove(e)

    def list_ruleset(self, table: dict) -> dict:
        if table["name"] not in self.tables:
            raise exception.NftError(reason="No such file or directory")
        return {"nftables": [{"set": {"name": n, "elem": list(e)}}
                             for n, e in self.tables[table["name"]].items()]}


@pytest.fixture
def nft(monkeypatch):
    fake = FakeNft()
    monkeypatch.setattr(nat_mod, "nft", fake)
    monkeypatch.setattr(nat_mod, "_write_forwarding", lambda name: None)
    return fake


def test_table_lives_while_anything_is_in_it(nft):
    nat = nat_mod.Nat("ext0", "pyct_t")
    nat.add_network("pyb-a")
    assert nft.tables["pyct_t"]["egress"] == ["pyb-a"]
    assert nft.tables["pyct_t"]["bridged"] == [{"concat": ["pyb-a",
                                                            "pyb-a"]}]
    nat.add_network("pyb-b")
    nat.add_floating("203.0.113.5", "10.247.1.10")
    assert nat.floating() == {"203.0.113.5": "10.247.1.10"}
    # a second address for the same fixed IP replaces the first
    nat.add_floating("203.0.113.6", "10.247.1.10")
    assert nat.floating() == {"203.0.113.6": "10.247.1.10"}
    assert nft.tables["pyct_t"]["fip_out"] == [["10.247.1.10",
                                                "203.0.113.6"]]
    nat.remove_network("pyb-a")
    nat.remove_network("pyb-b")
    assert "pyct_t" in nft.tables  # a floating IP is still there
    nat.set_floating({})
    assert nft.tables == {}
    nat.remove_network("pyb-a")  # idempotent, no table made for it
    assert nft.tables == {}


def test_one_batch_per_change_and_rebuild_keeps_elements(nft):
    first = nat_mod.Nat("ext0", "pyct_t")
    first.add_network("pyb-a")
    assert len(nft.batches) == 1  # table, sets, chains, rules, element
    first.add_network("pyb-b")
    assert len(nft.batches) == 2 and len(nft.batches[1]) == 2
    # a restarted service (another external interface, say) rebuilds
    second = nat_mod.Nat("ext1", "pyct_t")
    second.add_network("pyb-c")
    rebuild = nft.batches[-1]
    assert rebuild[0] == {"delete": {"table": {"family": "ip",
                                               "name": "pyct_t"}}}
    assert any(r.get("add", {}).get("rule", {}).get("expr", [{}])[0] ==
               {"match": {"op": "==", "left": {"meta": {"key": "iifname"}},
                          "right": "@egress"}} for r in rebuild)
    assert sorted(nft.tables["pyct_t"]["egress"]) == ["pyb-a", "pyb-b",
                                                      "pyb-c"]


def test_set_floating_converges_and_checks_addresses(nft):
    nat = nat_mod.Nat("ext0", "pyct_t")
    nat.set_floating({"203.0.113.5": "10.247.1.10",
                      "203.0.113.6": "10.247.1.11"})
    batches = len(nft.batches)
    nat.set_floating({"203.0.113.5": "10.247.1.10",
                      "203.0.113.6": "10.247.1.11"})
    assert len(nft.batches) == batches  # nothing to do: nothing written
    nat.set_floating({"203.0.113.5": "10.247.1.12"})
    assert nat.floating() == {"203.0.113.5": "10.247.1.12"}
    with pytest.raises(exception.NetworkError):
        nat.set_floating({"not-an-ip": "10.247.1.12"})
    with pytest.raises(exception.NetworkError, match="external_interface"):
        nat_mod.Nat("")
