"""``pyct-manage host evacuate-check``: the servers a dead host would
give up, their flavors and where each would go, placed one after
another; a host with no room left says so; nothing changes."""

from __future__ import annotations

import os
import subprocess
import sys

import sqlalchemy as sa

from pyct_driver import states
from pyct_driver.db import catalog, instances, models, services
from tests.functional import compute_fixtures as fx

BIN = os.path.dirname(sys.executable)


def _host(db, host, memory_mb) -> None:
    services.heartbeat(db, host, "pyct-compute", "pyct-compute")
    services.compute_node_report(db, host, {
        "vcpus": 8, "memory_mb": memory_mb, "local_gb": 100,
        "cpu_allocation_ratio": 1.0, "ram_allocation_ratio": 1.0,
        "disk_allocation_ratio": 1.0})


def _check(tmp_path, host) -> subprocess.CompletedProcess:
    conf = tmp_path / "pyct.conf"
    conf.write_text(f"[database]\nconnection = sqlite:///{tmp_path}/"
                    "pyct.sqlite\n[compute]\nreserved_host_memory_mb = 0\n")
    return subprocess.run(
        [os.path.join(BIN, "pyct-manage"), "--config-file", str(conf),
         "host", "evacuate-check", host], capture_output=True, text=True,
        timeout=60)


def _snapshot(db) -> list:
    with db.engine.connect() as conn:
        return [conn.execute(sa.select(table)).all() for table in (
            models.Instance.__table__, models.Service.__table__)]


def test_lists_servers_flavors_and_destinations(tmp_path):
    db = fx.make_db(tmp_path)
    flavor, image = fx.seed_catalog(db, tmp_path)  # 512 MiB
    big = catalog.flavor_create(db, dict(flavorid="2", name="m1.big",
                                         vcpus=1, memory_mb=1024,
                                         root_gb=1))
    for host, ram in (("dead", 4096), ("b", 1024), ("c", 600)):
        _host(db, host, ram)
    rows = {}
    for name, fl in (("small", flavor), ("large", big),
                     ("second", flavor), ("third", flavor)):
        inst = fx.new_instance(db, fl, image, "dead")
        inst = instances.update(db, inst["uuid"], {
            "vm_state": states.ACTIVE, "task_state": None, "name": name})
        rows[name] = inst
    instances.update(db, rows["third"]["uuid"],
                     {"task_state": states.REBOOTING})
    before = _snapshot(db)
    out = _check(tmp_path, "dead")
    assert out.returncode == 1, out.stderr  # not every server fits
    lines = out.stdout.splitlines()
    assert lines[0] == ("host dead: up; evacuation refused until it is "
                        "down")
    where = {line.split("\t")[1]: line.split("\t")[4]
             for line in lines[1:]}
    # placed in order: small on b (most RAM), large finds no 1024 left
    # anywhere, second on c, third is rebooting
    assert where == {"small": "b", "large": "NO HOST FITS",
                     "second": "c", "third": "NOT EVACUABLE"}
    assert "\t2 (1 vCPU, 1024 MiB, 1 GiB)\t" in out.stdout  # by id
    services.service_update(db, {"forced_down": True}, host="dead",
                            binary="pyct-compute")
    instances.soft_delete(db, rows["large"]["uuid"])
    instances.update(db, rows["third"]["uuid"], {"task_state": None})
    before = _snapshot(db)
    out = _check(tmp_path, "dead")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines()[0] == ("host dead: down; evacuation "
                                          "allowed")
    assert "NO HOST" not in out.stdout
    assert _snapshot(db) == before
    unknown = _check(tmp_path, "nowhere")
    assert unknown.returncode == 1
    assert "no compute service of that name" in unknown.stdout
