"""Quota enforcement on create, Nova's messages, and the reads around it.

Server create (instances, cores, RAM, metadata items; min/max count),
key pair create (per user), ``driver = noop``, Neutron's quota reads in
the network subset, noauth project look-ups, and a thread race on a
SQLite file (the all-in-one's database) ending exactly at the quota.
"""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from pyct_driver import exception
from pyct_driver.api import app as api_app
from pyct_driver.api import flavors, images, quota_check
from pyct_driver.db import migration
from pyct_driver.db.engine import Database
from tests.unit.test_api_app import Harness


def _boot(h, token="alice:p1", **server):
    body = {"name": "vm", "imageRef": h.image["id"], "flavorRef": "1",
            "networks": "none", **server}
    return h.request("POST", "/v2.1/servers", {"server": body},
                     token=token, version="2.37")


def _count(h, table):
    with h.db.engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table}")
                            ).scalar_one()


def test_cores_and_instances_messages_as_novas():
    h = Harness(quota__cores=3, quota__instances=2)
    h.add_host()
    assert _boot(h).status_int == 202
    resp = _boot(h, min_count=3, max_count=3)
    assert resp.status_int == 403
    assert resp.json["forbidden"]["message"] == (
        "Quota exceeded for cores, instances: Requested 3, 3, but already "
        "used 1, 1 of 3, 2 cores, instances")
    assert _count(h, "instances") == 1


def test_headroom_math():
    limits = {"instances": 10, "cores": -1, "ram": 4096}
    used = {"instances": 9, "cores": 40, "ram": 0}
    assert quota_check.instances_allowed(limits, used, 4, 512, 1, 5) == 1
    with pytest.raises(exception.QuotaExceeded) as err:
        quota_check.instances_allowed(limits, used, 4, 512, 2, 5)
    assert err.value.message == ("Quota exceeded for instances: Requested "
                                 "2-5, but already used 9 of 10 instances")
    unlimited = dict.fromkeys(limits, -1)
    assert quota_check.instances_allowed(unlimited, used, 4, 512, 1, 7) == 7


def test_metadata_items_quota():
    h = Harness(quota__metadata_items=2)
    h.add_host()
    resp = _boot(h, metadata={"a": "1", "b": "2", "c": "3"})
    assert resp.status_int == 403
    assert resp.json == {"forbidden": {"code": 403, "message":
                         "Maximum number of metadata items exceeds 2"}}
    assert _count(h, "instances") == 0
    assert _boot(h, metadata={"a": "1", "b": "2"}).status_int == 202


def test_key_pairs_are_counted_per_user():
    h = Harness(quota__key_pairs=1)
    assert h.request("POST", "/v2.1/os-keypairs",
                     {"keypair": {"name": "k1"}}).status_int == 200
    resp = h.request("POST", "/v2.1/os-keypairs",
                     {"keypair": {"name": "k2"}})
    assert resp.status_int == 403
    assert resp.json == {"forbidden": {"code": 403, "message":
                         "Quota exceeded, too many key pairs."}}
    assert h.request("POST", "/v2.1/os-keypairs", {"keypair": {
        "name": "k2"}}, token="bob:p1").status_int == 200
    assert _count(h, "key_pairs") == 2


def test_noop_driver_limits_nothing():
    h = Harness(quota__driver="noop", quota__instances=0)
    h.add_host()
    assert _boot(h).status_int == 202
    shown = h.request("GET", "/v2.1/os-quota-sets/p1").json["quota_set"]
    assert set(shown.values()) == {"p1", -1}


def test_multi_create_of_one_that_fits_no_host_makes_error_server_only_alone():
    h = Harness()
    h.add_host(memory_mb=512)
    # one server, no room: Nova's ERROR server with a NoValidHost fault
    assert _boot(h, flavorRef="1").status_int == 202
    resp = _boot(h, min_count=1, max_count=2)
    assert resp.status_int == 500
    assert "No valid host was found" in resp.json["computeFault"]["message"]
    assert _count(h, "instances") == 1


def test_neutron_quota_reads():
    h = Harness()
    h.add_host()
    _boot(h, networks="auto")
    resp = h.request("GET", "/networking/v2.0/quotas/p1")
    assert resp.status_int == 200
    assert resp.json["quota"]["network"] == 1
    assert resp.json["quota"]["router"] == 0
    detail = h.request("GET", "/networking/v2.0/quotas/p1/details").json
    assert detail["quota"]["network"] == {"limit": 1, "used": 1,
                                          "reserved": 0}
    assert detail["quota"]["port"]["used"] == 1
    resp = h.request("GET", "/networking/v2.0/quotas/p2")
    assert resp.status_int == 403
    assert resp.json["NeutronError"]["type"] == "Forbidden"
    assert h.admin("GET", "/networking/v2.0/quotas/p2").status_int == 200
    resp = h.admin("PUT", "/networking/v2.0/quotas/p1",
                   {"quota": {"network": 5}})
    assert resp.status_int == 501


def test_noauth_project_lookups():
    h = Harness()
    own = h.request("GET", "/identity/v3/projects/p1")
    assert own.status_int == 200 and own.json["project"]["id"] == "p1"
    assert h.request("GET", "/identity/v3/projects/p2").status_int == 403
    found = h.admin("GET", "/identity/v3/projects?name=p2").json
    assert [p["id"] for p in found["projects"]] == ["p2"]


def test_sqlite_file_race_ends_at_the_quota(tmp_path):
    url = f"sqlite:///{tmp_path / 'pyct.sqlite'}"
    migration.upgrade(url)
    h = Harness(quota__instances=4)
    h.db = Database(url)
    h.app = api_app.create_app(h.conf, h.db, h.compute)
    h.image = images.register_image(h.db, "img", "/x",
                                    {"disk_format": "raw"})
    flavors.create_flavor(h.db, "m1", 1, 512, 1, flavorid="1")
    h.add_host()
    statuses = []
    start = threading.Barrier(8)

    def run():
        start.wait()
        for _ in range(2):
            statuses.append(_boot(h).status_int)
    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [202] * 4 + [403] * 12
    assert _count(h, "instances") == 4
    h.db.dispose()


def test_losing_the_race_inside_the_transaction_leaves_nothing(
        monkeypatch):
    """The precheck saw room, a racer took it before the lock: the
    guard's 403 rolls back the rows, actions and ports of this create."""
    h = Harness(quota__instances=1)
    h.add_host()
    net = _boot(h, networks="auto")
    assert net.status_int == 202
    before = {t: _count(h, t) for t in ("instances", "instance_actions",
                                        "ports", "networks")}
    monkeypatch.setattr(quota_check.InstanceGuard, "precheck",
                        lambda self: self.max_count)
    resp = _boot(h, networks="auto", min_count=1, max_count=2)
    assert resp.status_int == 403
    assert resp.json["forbidden"]["message"] == (
        "Quota exceeded for instances: Requested 1-2, but already used 1 "
        "of 1 instances")
    assert {t: _count(h, t) for t in before} == before
    assert len(h.compute.calls) == 1
