"""The leak check's before/after logic (tools/leak_check.py), without root.

What was there before the suite is never blamed; what is new is blamed
unless it belongs to the deployment named with --foreign-state: under its
state dir, in its cgroup parent (a v1 hierarchy's directory, the v2 one,
or a process's /proc/PID/cgroup line), or a bridge/port of a network in
its database. Lookalikes (another cgroup parent with the same prefix,
another state dir, another network's bridge) are still blamed. The
deployment is read from a real config file and SQLite database.
"""

from __future__ import annotations

from pyct_driver.db import models
from pyct_driver.db import networks as db_networks
from pyct_driver.db.engine import Database
from pyct_driver.virt.network.bridge import bridge_name, veth_name
from tests.leak_check_tool import leak_check as lc


def _deployment(tmp_path):
    """A `make run`-style state dir: pyct.conf, a database with one
    network and one port."""
    state = tmp_path / "state"
    state.mkdir()
    url = f"sqlite:///{state}/pyct.sqlite"
    (state / "pyct.conf").write_text(
        f"[DEFAULT]\nstate_path = {state}\nvirt_driver = container\n\n"
        f"[database]\nconnection = {url}\n\n"
        "[container]\ncgroup_parent = pyct\n")
    db = Database(url)
    models.Base.metadata.create_all(db.engine)
    net = db_networks.create_network(db, "p", "private",
                                     db_networks.IpamSettings(), list)
    port = db_networks.allocate_port(db, "inst-1", "p", net["id"])
    db.dispose()
    return str(state), net["id"], port["id"]


def _snap(**kinds):
    return {kind.replace("_", " "): {key: lc.Item(key, refs)
                                     for key, refs in items.items()}
            for kind, items in kinds.items()}


def test_only_new_items_not_of_the_foreign_deployment_are_blamed(tmp_path):
    state, net_id, port_id = _deployment(tmp_path)
    foreign = lc.deployment(state)
    assert foreign.cgroup_parent == "pyct"
    assert foreign.links == {bridge_name(net_id), veth_name(port_id)}
    old = "/tmp/pyct-e2e-old/state/x"
    before = _snap(mounts={old: (old, "overlay")})
    after = _snap(
        mounts={old: (old, "overlay"),
                f"{state}/container/roots/i/root": (
                    f"{state}/container/roots/i/root", "overlay"),
                "/tmp/pyct-e2e-new/state/r": ("/tmp/pyct-e2e-new/state/r",
                                              "overlay"),
                # another state dir whose name starts like the foreign one
                f"{state}2/r": (f"{state}2/r", "overlay")},
        cgroups={p: (p,) for p in (
            "/sys/fs/cgroup/cpu/pyct", "/sys/fs/cgroup/cpu/pyct/uuid-1",
            "/sys/fs/cgroup/pyct/uuid-1", "/sys/fs/cgroup/cpu/pyct-test-1",
            "/sys/fs/cgroup/cpu/pyct-test-1/uuid-2")},
        loop_devices={
            "loop1 a": (f"{state}/container/roots/i/disk.img",),
            "loop2 b": ("/tmp/pyct-e2e-new/state/disk.img",)},
        network_links={n: (n,) for n in (
            bridge_name(net_id), veth_name(port_id), "pyb-0000000000a",
            "pyv-0000000000b")},
        processes={
            "1/1": (f"pyct-all-in-one --config-file {state}/pyct.conf",),
            # command line, then its cgroups as /proc/PID/cgroup names them
            "2/2": ("init", "/pyct/uuid-1", "/pyct/uuid-1"),
            "3/3": ("init", "/pyct-test-1/uuid-2"),
            "4/4": ("python -m pyct_driver.virt.process.forkserver.daemon "
                    "--state-dir /tmp/pyct-e2e-new/state/container/launcher",
                    "/user.slice")})

    blamed, skipped = lc.new_items(before, after, [foreign])
    assert {k: sorted(v) for k, v in blamed.items() if v} == {
        "mounts": ["/tmp/pyct-e2e-new/state/r", f"{state}2/r"],
        "cgroups": ["/sys/fs/cgroup/cpu/pyct-test-1",
                    "/sys/fs/cgroup/cpu/pyct-test-1/uuid-2"],
        "loop devices": ["loop2 b"],
        "network links": ["pyb-0000000000a", "pyv-0000000000b"],
        "processes": ["3/3", "4/4"]}
    assert skipped == 9
    # without the attribution all that is new is blamed; nothing old is
    strict, _ = lc.new_items(before, after, [])
    assert sum(map(len, strict.values())) == 18
    assert old not in strict["mounts"]


def test_no_config_no_deployment_and_no_database_file_made(tmp_path):
    assert lc.deployment(str(tmp_path)) is None
    (tmp_path / "pyct.conf").write_text(
        f"[DEFAULT]\nstate_path = {tmp_path}\n\n[database]\n"
        f"connection = sqlite:///{tmp_path}/never.sqlite\n")
    found = lc.deployment(str(tmp_path))
    assert found.links == frozenset() and found.cgroup_parent == "pyct"
    assert not (tmp_path / "never.sqlite").exists()


def test_save_and_load_round_trip(tmp_path):
    snap = _snap(mounts={"/a x y": ("/a", "y")}, processes={"1/2": ("c",)})
    path = str(tmp_path / "base.json")
    lc.save(snap, path)
    assert lc.load(path) == snap


def test_nft_tables_are_pyct_ones_only(monkeypatch):
    import subprocess

    listing = ("table inet filter\ntable ip pyct_nat\n"
               "table ip nat\ntable inet pyct_sg\n")

    def fake_run(argv, **kw):
        assert argv == ["nft", "list", "tables"]
        return subprocess.CompletedProcess(argv, 0, listing, "")
    monkeypatch.setattr(lc.subprocess, "run", fake_run)
    assert sorted(lc.nft_tables()) == ["inet pyct_sg", "ip pyct_nat"]
    # a pyct table new since the baseline is a leak; others' are not ours
    leaks, _ = lc.new_items({"nft tables": {}},
                            {"nft tables": lc.nft_tables()}, [])
    assert sorted(leaks["nft tables"]) == ["inet pyct_sg", "ip pyct_nat"]

    def no_nft(argv, **kw):
        raise FileNotFoundError("nft")
    monkeypatch.setattr(lc.subprocess, "run", no_nft)
    assert lc.nft_tables() == {}
