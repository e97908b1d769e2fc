"""Versioned notifications of the compute manager, in process.

The API app and a compute service over the in-process bus with the fake
driver; a recording notifier stands in for oslo.messaging's so each
test sees exactly which notifications went out, in which order, with
which payload. The payloads are checked against Nova's field sets and
object versions; the request id in them is the one the API answered with.
"""

from __future__ import annotations

import json
import time
import uuid as uuidlib

import pytest
import webob

from pyct_driver.notifications.notifier import Notifications
from pyct_driver.db import catalog
from pyct_driver.db import networks as db_networks
from tests.functional import compute_fixtures as fx

# InstanceActionPayload 1.9's fields (Nova's
# doc/notification_samples/common_payloads/InstancePayload.json + fault)
ACTION_FIELDS = {
    "architecture", "availability_zone", "block_devices", "created_at",
    "deleted_at", "display_name", "display_description", "host",
    "host_name", "ip_addresses", "kernel_id", "key_name", "launched_at",
    "image_uuid", "metadata", "locked", "node", "os_type", "progress",
    "ramdisk_id", "reservation_id", "state", "task_state", "power_state",
    "tenant_id", "terminated_at", "auto_disk_config", "flavor",
    "updated_at", "user_id", "uuid", "request_id", "action_initiator_user",
    "action_initiator_project", "locked_reason", "shares", "fault"}
CREATE_FIELDS = ACTION_FIELDS | {"keypairs", "tags",
                                 "trusted_image_certificates",
                                 "instance_name"}
FLAVOR_FIELDS = {"flavorid", "name", "root_gb", "vcpus", "ephemeral_gb",
                 "memory_mb", "disabled", "rxtx_factor", "extra_specs",
                 "projects", "swap", "is_public", "vcpu_weight",
                 "description"}
EXCEPTION_FIELDS = {"function_name", "module_name", "exception",
                    "exception_message", "traceback"}


class Recorder:
    """Records what an oslo.messaging Notifier would have been asked."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, object, str, dict]] = []

    def info(self, ctxt, event_type, payload):
        json.dumps(payload)  # what goes on the wire must be JSON
        self.sent.append(("INFO", ctxt, event_type, payload))

    def error(self, ctxt, event_type, payload):
        json.dumps(payload)
        self.sent.append(("ERROR", ctxt, event_type, payload))

    def events(self) -> list[str]:
        return [event for _, _, event, _ in self.sent]

    def take(self, count: int = 0, timeout: float = 10.0
             ) -> list[tuple[str, object, str, dict]]:
        """What was sent, once at least ``count`` notifications were (the
        end notification follows the state change a test waits for)."""
        deadline = time.monotonic() + timeout
        while len(self.sent) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        out, self.sent = self.sent, []
        return out


@pytest.fixture
def env(tmp_path):
    with fx.api_with_compute(tmp_path) as (db, service, app):
        rec = Recorder()
        service.manager.notify = Notifications(db, "host-a", versioned=rec)
        yield db, service, app, rec


def call(app, method, path, body=None, token="alice:p1"):
    req = webob.Request.blank(path, method=method)
    req.headers["X-Auth-Token"] = token
    req.headers["OpenStack-API-Version"] = "compute 2.37"
    if body is not None:
        req.body = json.dumps(body).encode()
        req.content_type = "application/json"
    return req.get_response(app)


def boot(app, db, image_id, wait="active", **extra):
    resp = call(app, "POST", "/v2.1/servers", {"server": dict(
        name="vm1", imageRef=image_id, flavorRef="1", networks="auto",
        metadata={"k": "v"}, **extra)})
    assert resp.status_int == 202, resp.text
    sid = resp.json["server"]["id"]
    fx.wait_for_row(db, sid, lambda r: r["vm_state"] == wait
                and r["task_state"] is None)
    return sid, resp.headers["x-openstack-request-id"]


def action(app, db, sid, body, vm_state):
    resp = call(app, "POST", f"/v2.1/servers/{sid}/action", body)
    assert resp.status_int == 202, resp.text
    fx.wait_for_row(db, sid, lambda r: r["vm_state"] == vm_state
                and r["task_state"] is None)
    return resp.headers["x-openstack-request-id"]


def data_of(payload, name, version="1.9"):
    assert payload["nova_object.name"] == name
    assert payload["nova_object.namespace"] == "nova"
    assert payload["nova_object.version"] == version
    return payload["nova_object.data"]


def _image(db, **props):
    image = catalog.image_list(db)[0]
    if not props:
        return image["id"]
    return catalog.image_create(db, dict(
        id=str(uuidlib.uuid4()), name="failing", status="active",
        location=image["location"], properties=props))["id"]


def test_lifecycle_notifications_have_nova_payloads(env):
    db, service, app, rec = env
    sid, req_id = boot(app, db, _image(db))
    sent = rec.take(2)
    assert [(p, e) for p, _, e, _ in sent] == [
        ("INFO", "instance.create.start"), ("INFO", "instance.create.end")]
    start = data_of(sent[0][3], "InstanceCreatePayload", "1.13")
    end = data_of(sent[1][3], "InstanceCreatePayload", "1.13")
    assert set(start) == set(end) == CREATE_FIELDS
    assert (start["state"], start["task_state"], start["power_state"]) == (
        "building", "spawning", "pending")
    assert (end["state"], end["task_state"], end["power_state"]) == (
        "active", None, "running")
    assert start["launched_at"] is None and end["launched_at"].endswith("Z")
    assert end["uuid"] == sid and end["display_name"] == "vm1"
    assert end["host"] == end["node"] == "host-a"
    assert end["tenant_id"] == "p1" and end["user_id"] == "alice"
    assert end["request_id"] == req_id
    assert (end["action_initiator_user"],
            end["action_initiator_project"]) == ("alice", "p1")
    assert end["metadata"] == {"k": "v"} and end["fault"] is None
    assert end["instance_name"].startswith("instance-")
    flavor = data_of(end["flavor"], "FlavorPayload", "1.4")
    assert set(flavor) == FLAVOR_FIELDS
    assert (flavor["flavorid"], flavor["memory_mb"], flavor["vcpus"]) == (
        "1", 512, 1)
    [ip] = end["ip_addresses"]
    ip = data_of(ip, "IpPayload", "1.0")
    port = db_networks.list_ports(db, instance_uuids=[sid])[0]
    assert ip == {"label": port["network"]["name"], "mac":
                  port["mac_address"], "meta": {}, "port_uuid": port["id"],
                  "version": 4, "address": port["ip_address"],
                  "device_name": "pyv-" + port["id"][:11]}
    # each call's context is the caller's, under the API's request id
    assert all(c.request_id == req_id for _, c, _, _ in sent)

    steps = [({"reboot": {"type": "SOFT"}}, "active", "reboot",
              ("active", "running")),
             ({"os-stop": None}, "stopped", "power_off",
              ("stopped", "shutdown")),
             ({"os-start": None}, "active", "power_on", ("active", "running")),
             ({"pause": None}, "paused", "pause", ("paused", "paused")),
             ({"unpause": None}, "active", "unpause", ("active", "running"))]
    for body, vm_state, name, (state, power) in steps:
        req_id = action(app, db, sid, body, vm_state)
        sent = rec.take(2)
        assert [e for _, _, e, _ in sent] == [
            f"instance.{name}.start", f"instance.{name}.end"], name
        first = data_of(sent[0][3], "InstanceActionPayload")
        last = data_of(sent[1][3], "InstanceActionPayload")
        assert set(first) == set(last) == ACTION_FIELDS
        assert first["task_state"] is not None, name
        assert (last["state"], last["power_state"], last["task_state"]) == (
            state, power, None), name
        assert last["request_id"] == req_id

    resp = call(app, "DELETE", f"/v2.1/servers/{sid}")
    assert resp.status_int == 204
    fx.wait_for_row(db, sid, lambda r: r["deleted"])
    sent = rec.take(2)
    assert [e for _, _, e, _ in sent] == ["instance.delete.start",
                                          "instance.delete.end"]
    gone = data_of(sent[1][3], "InstanceActionPayload")
    assert (gone["state"], gone["power_state"], gone["ip_addresses"]) == (
        "deleted", "pending", [])
    assert gone["deleted_at"] and gone["terminated_at"]
    assert gone["request_id"] == resp.headers["x-openstack-request-id"]


def test_failed_create_sends_error_and_compute_exception(env):
    db, service, app, rec = env
    sid, _ = boot(app, db, _image(db, fake_fail="spawn"), wait="error")
    sent = rec.take(3)
    assert [(p, e) for p, _, e, _ in sent] == [
        ("INFO", "instance.create.start"), ("ERROR", "instance.create.error"),
        ("ERROR", "compute.exception")]
    err = data_of(sent[1][3], "InstanceCreatePayload", "1.13")
    assert err["state"] == "building"       # sent before the state flips
    fault = data_of(err["fault"], "ExceptionPayload", "1.1")
    assert set(fault) == EXCEPTION_FIELDS
    assert fault["exception"] == "VirtError"
    assert fault["exception_message"].endswith("injected spawn failure")
    assert (fault["module_name"], fault["function_name"]) == (
        "pyct_driver.virt.fake", "_fail")
    assert "Traceback" in fault["traceback"]
    assert data_of(sent[2][3], "ExceptionPayload", "1.1") == fault


@pytest.mark.parametrize("step,body,vm_state,events", [
    ("reboot", {"reboot": {"type": "HARD"}}, "error",
     ["instance.reboot.start", "instance.reboot.error",
      "compute.exception"]),
    # Nova has no power_on.error: only compute.exception follows the start
    ("power_off", {"os-stop": None}, "active",
     ["instance.power_off.start", "compute.exception"]),
])
def test_failed_actions(env, step, body, vm_state, events):
    db, service, app, rec = env
    sid, _ = boot(app, db, _image(db, fake_fail=step))
    rec.take(2)
    action(app, db, sid, body, vm_state)
    sent = rec.take(len(events))
    time.sleep(0.2)  # and nothing else follows
    sent += rec.take()
    assert [e for _, _, e, _ in sent] == events
    assert all(p == "ERROR" for p, _, _, _ in sent[1:])


def test_interface_attach_and_detach(env, monkeypatch):
    db, service, app, rec = env
    sid, _ = boot(app, db, _image(db))
    rec.take(2)
    resp = call(app, "POST", f"/v2.1/servers/{sid}/os-interface",
                {"interfaceAttachment": {}})
    assert resp.status_int == 200, resp.text
    port_id = resp.json["interfaceAttachment"]["port_id"]
    sent = rec.take()
    assert [e for _, _, e, _ in sent] == ["instance.interface_attach.start",
                                          "instance.interface_attach.end"]
    end = data_of(sent[1][3], "InstanceActionPayload")
    assert port_id in {data_of(ip, "IpPayload", "1.0")["port_uuid"]
                       for ip in end["ip_addresses"]}
    resp = call(app, "DELETE", f"/v2.1/servers/{sid}/os-interface/{port_id}")
    assert resp.status_int == 202
    sent = rec.take()
    assert [e for _, _, e, _ in sent] == ["instance.interface_detach.start",
                                          "instance.interface_detach.end"]
    ips = [{data_of(ip, "IpPayload", "1.0")["port_uuid"] for ip in
            data_of(payload, "InstanceActionPayload")["ip_addresses"]}
           for _, _, _, payload in sent]
    assert port_id in ips[0] and port_id not in ips[1] and ips[1]

    def refuse(inst, vif):
        raise RuntimeError("no hot-plug today")
    monkeypatch.setattr(service.manager.driver, "attach_interface", refuse)
    resp = call(app, "POST", f"/v2.1/servers/{sid}/os-interface",
                {"interfaceAttachment": {}})
    assert resp.status_int == 500
    sent = rec.take()
    assert [e for _, _, e, _ in sent] == ["instance.interface_attach.start",
                                          "instance.interface_attach.error",
                                          "compute.exception"]
    fault = data_of(data_of(sent[1][3], "InstanceActionPayload")["fault"],
                    "ExceptionPayload", "1.1")
    assert (fault["exception"], fault["function_name"]) == (
        "RuntimeError", "refuse")


def test_a_broken_notifier_never_fails_an_operation(env):
    db, service, app, _ = env

    class Broken:
        def info(self, *args):
            raise OSError("broker gone")
        error = info
    service.manager.notify = Notifications(db, "host-a", versioned=Broken())
    sid, _ = boot(app, db, _image(db))
    action(app, db, sid, {"os-stop": None}, "stopped")


def test_no_notifier_sends_nothing_and_reads_nothing(env, monkeypatch):
    db, service, app, rec = env
    service.manager.notify = Notifications(db, "host-a")
    monkeypatch.setattr(Notifications, "_instance_event", lambda *a: (
        pytest.fail("payload built while notifications are off")))
    boot(app, db, _image(db))
    assert rec.sent == []


@pytest.fixture
def api_notes(tmp_path, monkeypatch):
    """The pipeline with recorders for the API's notifications (as
    ``nova-api``) and the compute service's."""
    api_rec = Recorder()
    real = Notifications.from_conf

    def from_conf(conf, db, host, source="compute"):
        if source == "api":
            return Notifications(db, "api-host", versioned=api_rec)
        return real(conf, db, host, source)
    monkeypatch.setattr(Notifications, "from_conf", from_conf)
    with fx.api_with_compute(tmp_path) as (db, service, app):
        rec = Recorder()
        service.manager.notify = Notifications(db, "host-a", versioned=rec)
        yield db, app, api_rec, rec


def test_the_api_notifies_a_delete_no_compute_service_does(api_notes):
    db, app, api_rec, rec = api_notes
    # more disk than any host has (RAM that big would be over quota first)
    catalog.flavor_create(db, dict(flavorid="huge", name="huge", vcpus=1,
                                   memory_mb=512, root_gb=1 << 30))
    resp = call(app, "POST", "/v2.1/servers", {"server": dict(
        name="nowhere", imageRef=_image(db), flavorRef="huge",
        networks="none")})
    assert resp.status_int == 202, resp.text
    sid = resp.json["server"]["id"]
    row = fx.wait_for_row(db, sid, lambda r: r["vm_state"] == "error")
    assert row["host"] is None          # NoValidHost: never scheduled
    resp = call(app, "DELETE", f"/v2.1/servers/{sid}")
    assert resp.status_int == 204
    sent = api_rec.take(2)
    assert [e for _, _, e, _ in sent] == ["instance.delete.start",
                                          "instance.delete.end"]
    end = data_of(sent[1][3], "InstanceActionPayload")
    assert (end["uuid"], end["state"], end["host"]) == (sid, "deleted", None)
    assert end["request_id"] == resp.headers["x-openstack-request-id"]
    assert rec.sent == []               # the compute service saw nothing


def test_calls_that_fail_send_compute_exception_once(env):
    db, service, app, rec = env
    sid, _ = boot(app, db, _image(db))
    rec.take(2)
    # a port that is not the server's: refused before any action begins
    resp = call(app, "DELETE", f"/v2.1/servers/{sid}/os-interface/"
                f"{uuidlib.uuid4()}")
    assert resp.status_int == 404
    assert rec.events() == []   # the API refused it; compute never asked
    service.manager.driver.get_console_output = lambda *a: (
        _ for _ in ()).throw(OSError("console gone"))
    resp = call(app, "POST", f"/v2.1/servers/{sid}/action",
                {"os-getConsoleOutput": {}})
    assert resp.status_int >= 400
    sent = rec.take(1)
    assert [(p, e) for p, _, e, _ in sent] == [("ERROR", "compute.exception")]
    assert data_of(sent[0][3], "ExceptionPayload", "1.1")[
        "exception"] == "OSError"
