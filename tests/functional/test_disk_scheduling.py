"""Disk placement, API to compute service, in process (fake driver).

The compute service is the real composition (``cmd.compute.build_service``
from the configuration) and reports what its driver says, less
``[compute] reserved_host_disk_mb``; the API's scheduler refuses a server
whose root + ephemeral disk does not fit in that times
``disk_allocation_ratio`` minus the flavors already placed there (ERROR
with Nova's NoValidHost fault), and places one that fits.
"""

from __future__ import annotations

import json

import pytest
import webob

from pyct_driver.api import app as api_app
from pyct_driver.cmd import compute as compute_cmd
from pyct_driver.db import catalog, services
from pyct_driver.rpc import client as rpc_client
from pyct_driver.rpc import transport as rpc_transport
from tests.functional import compute_fixtures as fx


@pytest.fixture
def make_env(tmp_path):
    started = []

    def make(local_gb: int, reserved_mb: int, ratio: float = 1.0):
        conf = fx.make_conf()
        url = f"fake://{tmp_path.name}/"
        for group, name, value in (
                (None, "transport_url", url),
                # its own host lock, not /var/lib/pyct's: another test of
                # this module may run its service at the same time
                (None, "state_path", str(tmp_path)),
                ("fake_driver", "local_gb", local_gb),
                ("compute", "reserved_host_disk_mb", reserved_mb),
                ("compute", "disk_allocation_ratio", ratio),
                ("metadata", "port", 0)):
            conf.set_override(name, value, group=group)
        db = fx.make_db(tmp_path)
        _, image = fx.seed_catalog(db, tmp_path)
        for gb in (3, 4, 5):
            catalog.flavor_create(db, dict(
                flavorid=f"d{gb}", name=f"disk{gb}", vcpus=1, memory_mb=64,
                root_gb=gb))
        catalog.flavor_create(db, dict(
            flavorid="e2", name="eph", vcpus=1, memory_mb=64, root_gb=1,
            ephemeral_gb=2))
        service = compute_cmd.build_service(conf, db)
        service.start()
        started.append(service)
        client = rpc_client.ComputeClient(
            conf, rpc_transport.get_transport(conf, url), timeout=10)
        return db, api_app.create_app(conf, db, client), image["id"]

    yield make
    for service in started:
        service.stop()
    rpc_transport.cleanup()
    fx.make_conf()  # drop the overrides


def _boot(app, db, image_id: str, flavor: str) -> dict:
    req = webob.Request.blank("/v2.1/servers", method="POST")
    req.headers["X-Auth-Token"] = "alice:p1"
    req.body = json.dumps({"server": {
        "name": flavor, "imageRef": image_id, "flavorRef": flavor}}).encode()
    req.content_type = "application/json"
    resp = req.get_response(app)
    assert resp.status_int == 202, resp.text
    sid = resp.json["server"]["id"]
    fx.wait_for_row(db, sid, lambda r: r["vm_state"] in ("active", "error"))
    req = webob.Request.blank(f"/v2.1/servers/{sid}")
    req.headers["X-Auth-Token"] = "alice:p1"
    return req.get_response(app).json["server"]


def _refused(server: dict) -> bool:
    fault = server.get("fault", {})
    return (server["status"] == "ERROR" and fault.get("code") == 500 and
            fault["message"] == "No valid host was found. There are not "
            "enough hosts available.")


def test_disk_beyond_reported_capacity_is_refused(make_env):
    # 10 GiB from the driver, 2 GiB reserved: the host offers 8
    db, app, image = make_env(local_gb=10, reserved_mb=2048)
    node = services.compute_node_list(db)[0]
    assert node["local_gb"] == 8
    assert _boot(app, db, image, "d5")["status"] == "ACTIVE"
    # 4 GiB would fit an empty host, not beside the 5 already placed
    assert _refused(_boot(app, db, image, "d4"))
    assert _boot(app, db, image, "d3")["status"] == "ACTIVE"  # 8 of 8
    # ephemeral disk counts too: 1 + 2 GiB, nothing left
    assert _refused(_boot(app, db, image, "e2"))


def test_reserve_is_rounded_up_and_taken_before_the_ratio(make_env):
    # Nova: (10 - ceil(1025 MiB) = 8) x 1.5 = 12 GiB, not 10 x 1.5 - 2
    db, app, image = make_env(local_gb=10, reserved_mb=1025, ratio=1.5)
    assert services.compute_node_list(db)[0]["local_gb"] == 8
    assert _boot(app, db, image, "d5")["status"] == "ACTIVE"
    assert _boot(app, db, image, "d4")["status"] == "ACTIVE"  # 9 of 12
    assert _refused(_boot(app, db, image, "d4"))  # 13 > 12
    assert _boot(app, db, image, "d3")["status"] == "ACTIVE"  # 12 of 12


def test_reserve_larger_than_the_host_leaves_nothing(make_env):
    db, app, image = make_env(local_gb=4, reserved_mb=8192)
    assert services.compute_node_list(db)[0]["local_gb"] == 0
    assert _refused(_boot(app, db, image, "d3"))
