"""Notification payloads built from rows, without a database or a bus."""

from __future__ import annotations

import datetime

from pyct_driver import context, exception, states
from pyct_driver.notifications import payloads

INSTANCE = {
    "id": 42, "uuid": "178b0921-8f85-4257-88b6-2e743b5a975c",
    "name": "some-server", "hostname": "some-server", "description": None,
    "project_id": "p1", "user_id": "u1", "host": "compute",
    "image_ref": "155d900f-4e14-4e4c-a73d-069cbf4541e6",
    "flavor": {"flavorid": 1, "name": "m1.tiny", "vcpus": 1,
               "memory_mb": 512, "root_gb": 1, "extra_specs": {"a": "b"}},
    "vm_state": states.ACTIVE, "task_state": None,
    "power_state": states.RUNNING, "metadata": {"n": 1},
    "key_name": "k", "key_data": "ssh-ed25519 AAAA k",
    "reservation_id": "r-1", "availability_zone": None, "locked": False,
    "created_at": datetime.datetime(2012, 10, 29, 13, 42, 11, 5000),
    "launched_at": None, "terminated_at": None, "deleted_at": None,
    "updated_at": None,
}
PORT = {"id": "ce531f90-199f-48c0-816c-13e38010b442",
        "mac_address": "fa:16:3e:4c:2c:30", "ip_address": "10.0.0.3",
        "network": {"name": "private"}}


def test_instance_data_fields_and_values():
    ctxt = context.RequestContext("u1", "p1", ["member"])
    data = payloads.instance_data(ctxt, INSTANCE, [PORT, dict(
        PORT, ip_address=None)], {"os_type": "linux"}, None)
    assert data["created_at"] == "2012-10-29T13:42:11Z"
    assert data["power_state"] == "running" and data["state"] == "active"
    assert data["os_type"] == "linux" and data["architecture"] is None
    assert data["metadata"] == {"n": "1"}     # DictOfStrings on the wire
    assert data["flavor"]["nova_object.data"]["flavorid"] == "1"
    assert data["flavor"]["nova_object.data"]["extra_specs"] == {"a": "b"}
    # a port without an address has no IpPayload
    [ip] = data["ip_addresses"]
    assert ip["nova_object.data"]["device_name"] == "pyv-ce531f90-19"
    assert data["request_id"] == ctxt.request_id
    assert (data["kernel_id"], data["ramdisk_id"], data["block_devices"]) \
        == ("", "", None)


def test_periodic_context_names_no_request_id():
    ctxt = context.get_admin_context()
    data = payloads.instance_data(ctxt, INSTANCE, [], {}, None)
    assert data["request_id"] is None
    assert data["action_initiator_user"] is None


def test_every_power_state_has_novas_name():
    assert set(payloads.POWER_STATES.values()) == {
        "pending", "running", "paused", "shutdown", "crashed", "suspended"}
    assert set(payloads.POWER_STATES) == set(states.POWER_STATE_NAMES)


def test_exception_payload_of_a_raised_and_a_bare_error():
    def deep():
        raise exception.VirtError(reason="disk on fire")
    try:
        deep()
    except exception.VirtError as err:
        raised = payloads.exception_payload(err)["nova_object.data"]
    assert (raised["module_name"], raised["function_name"],
            raised["exception"]) == (__name__, "deep", "VirtError")
    assert "disk on fire" in raised["exception_message"]
    bare = payloads.exception_payload(ValueError("x"))["nova_object.data"]
    assert (bare["module_name"], bare["function_name"]) == ("unknown",
                                                            "unknown")


def test_create_payload_keypair_and_name():
    data = payloads.create_data({}, INSTANCE, {"fingerprint": "aa:bb",
                                               "type": "ssh"})
    assert data["instance_name"] == "instance-0000002a"
    [kp] = data["keypairs"]
    assert kp["nova_object.name"] == "KeypairPayload"
    assert kp["nova_object.data"] == {
        "user_id": "u1", "name": "k", "fingerprint": "aa:bb",
        "public_key": "ssh-ed25519 AAAA k", "type": "ssh"}
    assert payloads.create_data({}, dict(INSTANCE, key_name=None), None)[
        "keypairs"] == []


def test_legacy_payload():
    out = payloads.legacy_payload(INSTANCE, [PORT], RuntimeError("no"))
    assert out["instance_id"] == INSTANCE["uuid"]
    assert (out["memory_mb"], out["disk_gb"], out["instance_type"]) == (
        512, 1, "m1.tiny")
    assert out["fixed_ips"][0]["address"] == "10.0.0.3"
    assert (out["exception"], out["message"]) == ("RuntimeError", "no")
