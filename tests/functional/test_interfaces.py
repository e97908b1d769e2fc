"""os-interface end to end in process: API -> RPC call -> manager -> fake
driver, plus the VIFs and config drive flag the manager hands the driver."""

from __future__ import annotations

import json

import pytest
import webob

from pyct_driver import exception
from pyct_driver.compute.manager import ComputeManager
from pyct_driver.db import instances as db_instances
from pyct_driver.db import models
from pyct_driver.db import networks as db_networks
from pyct_driver.virt import base as virt_base
from pyct_driver.virt.fake import FakeDriver
from tests.functional import compute_fixtures as fx


@pytest.fixture
def env(tmp_path):
    with fx.api_with_compute(tmp_path) as env:
        yield env


def call(app, method, path, body=None):
    req = webob.Request.blank(path, method=method)
    req.headers["X-Auth-Token"] = "alice:p1"
    req.headers["OpenStack-API-Version"] = "compute 2.37"
    if body is not None:
        req.body = json.dumps(body).encode()
        req.content_type = "application/json"
    return req.get_response(app)


def boot(app, db, image_id):
    resp = call(app, "POST", "/v2.1/servers", {"server": {
        "name": "vm", "imageRef": image_id, "flavorRef": "1",
        "networks": "auto"}})
    assert resp.status_int == 202, resp.text
    sid = resp.json["server"]["id"]
    fx.wait_for_row(db, sid, lambda r: r["vm_state"] == "active")
    return sid


def test_attach_list_show_detach_with_fake_driver(env):
    db, service, app = env
    sid = boot(app, db, _image_id(db))
    inst = db_instances.get(db, sid)
    spec = service.manager.spec(inst)
    assert [(v.device_index, v.ip, v.prefixlen, v.gateway) for v in
            spec.vifs] == [(0, "10.246.0.2", 24, "10.246.0.1")]
    assert spec.config_drive is False
    listed = call(app, "GET", f"/v2.1/servers/{sid}/os-interface").json
    first = listed["interfaceAttachments"][0]
    assert first["port_state"] == "ACTIVE"      # set when the build ended

    net = db_networks.list_networks(db, project_id="p1")[0]
    resp = call(app, "POST", f"/v2.1/servers/{sid}/os-interface", {
        "interfaceAttachment": {"net_id": net["id"], "fixed_ips": [
            {"ip_address": "10.246.0.77"}]}})
    assert resp.status_int == 200, resp.text
    att = resp.json["interfaceAttachment"]
    assert att["net_id"] == net["id"] and att["port_state"] == "ACTIVE"
    assert att["fixed_ips"] == [{"ip_address": "10.246.0.77",
                                 "subnet_id": net["subnet_id"]}]
    plugged = service.manager.driver._instances[sid]["vifs"]
    assert plugged[att["port_id"]].device_index == 1
    assert plugged[att["port_id"]].mac == att["mac_addr"]
    shown = call(app, "GET",
                 f"/v2.1/servers/{sid}/os-interface/{att['port_id']}")
    assert shown.json["interfaceAttachment"] == att
    taken = call(app, "POST", f"/v2.1/servers/{sid}/os-interface", {
        "interfaceAttachment": {"net_id": net["id"], "fixed_ips": [
            {"ip_address": "10.246.0.77"}]}})
    assert taken.status_int == 409
    server = call(app, "GET", f"/v2.1/servers/{sid}").json["server"]
    assert [a["addr"] for a in server["addresses"]["private"]] == [
        "10.246.0.2", "10.246.0.77"]

    resp = call(app, "DELETE",
                f"/v2.1/servers/{sid}/os-interface/{att['port_id']}")
    assert resp.status_int == 202
    assert att["port_id"] not in service.manager.driver._instances[sid][
        "vifs"]
    assert len(db_networks.list_ports(db, instance_uuids=[sid])) == 1
    assert call(app, "DELETE", f"/v2.1/servers/{sid}/os-interface/"
                f"{att['port_id']}").status_int == 404


def _image_id(db):
    with db.session() as session:
        return session.query(models.Image.id).first()[0]


def test_failed_plug_releases_the_port(env, monkeypatch):
    db, service, app = env
    sid = boot(app, db, _image_id(db))
    driver = service.manager.driver
    # the base class's refusal, as a driver without hot-plug gives it
    monkeypatch.setattr(driver, "attach_interface", lambda inst, vif: (
        virt_base.VirtDriver.attach_interface(driver, inst, vif)))
    resp = call(app, "POST", f"/v2.1/servers/{sid}/os-interface",
                {"interfaceAttachment": {}})
    # Nova's words; the host's reason ("hot-plug is not supported") is
    # in the API log, not in the answer
    assert resp.status_int == 500
    assert resp.json["computeFault"]["message"] == (
        f"Failed to attach network adapter device to {sid}")
    assert len(db_networks.list_ports(db, instance_uuids=[sid])) == 1


def test_terminate_releases_ports_and_config_drive_is_forced(tmp_path):
    conf = fx.make_conf()
    db = fx.make_db(tmp_path)
    flavor, image = fx.seed_catalog(db, tmp_path)
    manager = ComputeManager(db, FakeDriver(conf), "h",
                             force_config_drive=True)
    inst = fx.new_instance(db, flavor, image, "h")
    net = db_networks.create_network(db, "p1", "n",
                                     db_networks.IpamSettings(), list)
    db_networks.allocate_port(db, inst["uuid"], "p1", net["id"])
    assert manager.spec(inst).config_drive is True
    manager.delete_now(inst)
    assert db_networks.list_ports(db) == []
    with pytest.raises(exception.InstanceNotFound):
        db_instances.soft_delete(db, inst["uuid"])
