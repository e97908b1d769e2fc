"""Servers, server actions and instance actions through the WSGI app."""

from __future__ import annotations

import base64
import datetime
import unicodedata

from pyct_driver import states
from pyct_driver.db import actions as db_actions
from pyct_driver.db import instances as db_instances
from pyct_driver.db import models
from pyct_driver.db import networks as db_networks
from tests.unit.test_api_app import Harness

BASE_KEYS = {
    "accessIPv4", "accessIPv6", "addresses", "created", "flavor", "hostId",
    "id", "image", "links", "metadata", "name", "status", "tenant_id",
    "user_id", "updated", "OS-DCF:diskConfig",
    "OS-EXT-AZ:availability_zone", "config_drive", "key_name",
    "OS-SRV-USG:launched_at", "OS-SRV-USG:terminated_at",
    "OS-EXT-STS:task_state", "OS-EXT-STS:vm_state",
    "OS-EXT-STS:power_state", "os-extended-volumes:volumes_attached",
    "progress"}
ADMIN_21 = {"OS-EXT-SRV-ATTR:host", "OS-EXT-SRV-ATTR:hypervisor_hostname",
            "OS-EXT-SRV-ATTR:instance_name"}
ADMIN_23 = {"OS-EXT-SRV-ATTR:hostname", "OS-EXT-SRV-ATTR:reservation_id",
            "OS-EXT-SRV-ATTR:launch_index", "OS-EXT-SRV-ATTR:kernel_id",
            "OS-EXT-SRV-ATTR:ramdisk_id",
            "OS-EXT-SRV-ATTR:root_device_name", "OS-EXT-SRV-ATTR:user_data"}
V237 = {"locked", "description", "tags"}


def _ready():
    h = Harness()
    h.add_host("node1")
    return h


def test_create_casts_build_and_returns_202():
    h = _ready()
    resp = h.request("POST", "/v2.1/servers", {"server": {
        "name": "web", "imageRef": h.image["id"], "flavorRef": "1",
        "networks": "none"}}, version="2.37")
    assert resp.status_int == 202
    server = resp.json["server"]
    assert set(server) == {"id", "links", "OS-DCF:diskConfig", "adminPass"}
    assert resp.headers["Location"] == server["links"][0]["href"]
    assert h.compute.calls == [("build_and_run_instance", "node1",
                                server["id"], {})]
    inst = db_instances.get(h.db, server["id"])
    assert (inst["vm_state"], inst["task_state"], inst["host"]) == (
        states.BUILDING, states.SCHEDULING, "node1")
    assert inst["networks"] == "none"
    acts = db_actions.action_list(h.db, server["id"])
    assert [a["action"] for a in acts] == ["create"]
    assert acts[0]["request_id"] == resp.headers["x-openstack-request-id"]


def test_create_with_networks_shows_security_groups():
    h = _ready()
    net = db_networks.create_network(h.db, "p1", "net1",
                                     db_networks.IpamSettings(), list)
    server = h.boot(networks=[{"uuid": net["id"]}])
    assert server["security_groups"] == [{"name": "default"}]


def test_create_many_names_and_reservation():
    h = _ready()
    resp = h.request("POST", "/v2.1/servers", {"server": {
        "name": "web", "imageRef": h.image["id"], "flavorRef": "1",
        "networks": "auto", "min_count": 3, "max_count": 3,
        "return_reservation_id": True}}, version="2.37")
    assert resp.status_int == 202
    rid = resp.json["reservation_id"]
    rows = db_instances.list_(h.db)
    assert sorted(r["name"] for r in rows) == ["web-1", "web-2", "web-3"]
    assert {r["reservation_id"] for r in rows} == {rid}
    assert len(h.compute.calls) == 3


def test_create_without_host_gives_error_server_with_fault():
    h = Harness()    # no compute node
    server = h.boot("lonely")
    assert h.compute.calls == []
    body = h.request("GET", f"/v2.1/servers/{server['id']}").json["server"]
    assert body["status"] == "ERROR"
    assert body["fault"]["code"] == 500
    assert body["fault"]["message"].startswith("No valid host was found.")
    assert "details" not in body["fault"]     # 500 details: admin only
    admin = h.admin("GET", f"/v2.1/servers/{server['id']}").json["server"]
    assert "details" in admin["fault"]


def test_scheduler_prefers_most_free_ram_and_respects_capacity():
    h = Harness()
    h.add_host("a", memory_mb=2048)
    h.add_host("b", memory_mb=4096)
    first = h.boot("one")
    assert db_instances.get(h.db, first["id"])["host"] == "b"
    h2 = Harness(compute__reserved_host_memory_mb=0)
    h2.add_host("small", vcpus=1, memory_mb=512)
    h2.boot("fits")
    second = h2.boot("nofit")
    assert db_instances.get(h2.db, second["id"])["vm_state"] == "error"


def test_show_keys_at_21_and_237_for_user_and_admin():
    h = _ready()
    sid = h.boot()["id"]
    body = h.request("GET", f"/v2.1/servers/{sid}").json["server"]
    assert set(body) == BASE_KEYS
    body = h.request("GET", f"/v2.1/servers/{sid}",
                     version="2.37").json["server"]
    assert set(body) == BASE_KEYS | V237
    body = h.admin("GET", f"/v2.1/servers/{sid}").json["server"]
    assert set(body) == BASE_KEYS | ADMIN_21
    body = h.admin("GET", f"/v2.1/servers/{sid}",
                   version="2.37").json["server"]
    assert set(body) == BASE_KEYS | ADMIN_21 | ADMIN_23 | V237 | {
        "host_status"}
    assert body["host_status"] == "UP"
    assert body["status"] == "BUILD" and body["tags"] == []
    assert body["image"]["id"] == h.image["id"]
    assert body["flavor"]["id"] == "1"
    assert len(body["hostId"]) == 56


def test_other_project_cannot_see_server():
    h = _ready()
    sid = h.boot()["id"]
    resp = h.request("GET", f"/v2.1/servers/{sid}", token="bob:p2")
    assert resp.status_int == 404
    assert resp.json == {"itemNotFound": {
        "code": 404, "message": f"Instance {sid} could not be found."}}
    assert h.request("GET", "/v2.1/servers",
                     token="bob:p2").json["servers"] == []
    assert h.request("DELETE", f"/v2.1/servers/{sid}",
                     token="bob:p2").status_int == 404


def test_list_filters_paging_and_all_tenants():
    h = _ready()
    ids = [h.boot(f"vm{i}")["id"] for i in range(3)]
    h.boot("other", token="bob:p2")
    body = h.request("GET", "/v2.1/servers").json
    assert [s["id"] for s in body["servers"]] == ids[::-1]
    assert set(body["servers"][0]) == {"id", "name", "links"}
    page = h.request("GET", "/v2.1/servers?limit=2").json
    assert len(page["servers"]) == 2
    assert page["servers_links"][0]["rel"] == "next"
    assert f"marker={ids[1]}" in page["servers_links"][0]["href"]
    rest = h.request("GET", f"/v2.1/servers?limit=2&marker={ids[1]}").json
    assert [s["id"] for s in rest["servers"]] == [ids[0]]
    assert "servers_links" not in rest
    named = h.request("GET", "/v2.1/servers?name=^vm[12]$").json
    assert {s["name"] for s in named["servers"]} == {"vm1", "vm2"}
    assert h.request("GET", "/v2.1/servers?status=ACTIVE").json[
        "servers"] == []
    assert len(h.request("GET", "/v2.1/servers/detail?status=BUILD").json[
        "servers"]) == 3
    assert len(h.admin("GET", "/v2.1/servers?all_tenants=1").json[
        "servers"]) == 4
    assert h.admin("GET", "/v2.1/servers").json["servers"] == []
    assert h.request("GET", "/v2.1/servers?all_tenants=1").status_int == 403
    assert h.request("GET", "/v2.1/servers?unknown=1").status_int == 200
    future = (datetime.datetime.utcnow() + datetime.timedelta(hours=1)
              ).isoformat()
    assert h.request("GET", f"/v2.1/servers?changes-since={future}").json[
        "servers"] == []


def test_update_name_and_description():
    h = _ready()
    sid = h.boot()["id"]
    resp = h.request("PUT", f"/v2.1/servers/{sid}", {"server": {
        "name": "renamed", "description": "d"}}, version="2.37")
    assert resp.status_int == 200
    assert resp.json["server"]["name"] == "renamed"
    assert resp.json["server"]["description"] == "d"
    resp = h.request("PUT", f"/v2.1/servers/{sid}", {"server": {
        "description": "d"}}, version="2.1")
    assert resp.status_int == 400


def test_delete_casts_to_live_host_and_deletes_locally_otherwise():
    h = _ready()
    sid = h.boot()["id"]
    resp = h.request("DELETE", f"/v2.1/servers/{sid}")
    assert resp.status_int == 204 and resp.body == b""
    assert h.compute.calls[-1] == ("terminate_instance", "node1", sid, {})
    assert db_instances.get(h.db, sid)["task_state"] == states.DELETING
    lonely = Harness()
    lid = lonely.boot()["id"]
    assert lonely.request("DELETE", f"/v2.1/servers/{lid}").status_int == 204
    assert lonely.request("GET", f"/v2.1/servers/{lid}").status_int == 404
    acts = db_actions.action_list(lonely.db, lid)
    assert acts[0]["action"] == "delete" and acts[0]["finish_time"]


def _set_state(h, sid, vm_state, task_state=None):
    with h.db.session() as s:
        row = s.query(models.Instance).filter_by(uuid=sid).one()
        row.vm_state, row.task_state = vm_state, task_state


def test_actions_cas_record_and_cast():
    h = _ready()
    sid = h.boot()["id"]
    _set_state(h, sid, states.ACTIVE)
    path = f"/v2.1/servers/{sid}/action"
    resp = h.request("POST", path, {"reboot": {"type": "SOFT"}})
    assert resp.status_int == 202 and resp.body == b""
    assert h.compute.calls[-1] == ("reboot_instance", "node1", sid,
                                   {"reboot_type": "SOFT"})
    resp = h.request("POST", path, {"reboot": {"type": "SOFT"}})
    assert resp.status_int == 409
    assert resp.json["conflictingRequest"]["message"] == (
        f"Cannot 'reboot' instance {sid} while it is in task_state "
        "rebooting")
    assert h.request("POST", path, {"reboot": {"type": "HARD"}}
                     ).status_int == 202
    _set_state(h, sid, states.ACTIVE)
    for action, rpc, vm_after in (("os-stop", "stop_instance", "stopped"),
                                  ("os-start", "start_instance", "active"),
                                  ("pause", "pause_instance", "paused"),
                                  ("unpause", "unpause_instance",
                                   "active")):
        resp = h.request("POST", path, {action: None})
        assert resp.status_int == 202, (action, resp.text)
        assert h.compute.calls[-1][0] == rpc
        _set_state(h, sid, vm_after)
    names = [a["action"] for a in db_actions.action_list(h.db, sid)]
    assert sorted(names) == sorted(["create", "reboot", "reboot", "stop",
                                    "start", "pause", "unpause"])


def test_console_output():
    h = _ready()
    sid = h.boot()["id"]
    _set_state(h, sid, states.ACTIVE)
    resp = h.request("POST", f"/v2.1/servers/{sid}/action",
                     {"os-getConsoleOutput": {"length": 5}})
    assert resp.status_int == 200
    assert resp.json == {"output": "line1\nline2\n"}
    assert h.compute.calls[-1] == ("get_console_output", "node1", sid,
                                   {"length": 5})
    h.request("POST", f"/v2.1/servers/{sid}/action",
              {"os-getConsoleOutput": {"length": -1}})
    assert h.compute.calls[-1][3] == {"length": None}


def test_console_output_loses_the_guests_terminal_controls():
    """The guest writes its console: ESC sequences (colour, an OSC window
    title ended by BEL), C1 CSI/OSC/ST, DEL, CR, vertical tab and NUL must
    not reach the admin's terminal; tab and newline stay (Nova's rule, plus
    DEL and C1)."""
    h = _ready()
    sid = h.boot()["id"]
    _set_state(h, sid, states.ACTIVE)
    h.compute.console = (
        "\x1b[31mred\x1b[0m \x07bell\r\n"
        "\x1b]0;pwned title\x07\x1b]8;;http://evil\x1b\\link\n"
        "\x9b2J\x9d0;c1 title\x9c\x7f\x00\x0b\x0ccol1\tcol2 \u00e9\n")
    resp = h.request("POST", f"/v2.1/servers/{sid}/action",
                     {"os-getConsoleOutput": {}})
    assert resp.status_int == 200
    output = resp.json["output"]
    assert output == ("[31mred[0m bell\n"
                      "]0;pwned title]8;;http://evil\\link\n"
                      "2J0;c1 titlecol1\tcol2 \u00e9\n")
    assert not [c for c in output if unicodedata.category(c) == "Cc"
                and c not in "\t\n"]


def test_instance_actions_list_show_and_events_for_admin():
    h = _ready()
    sid = h.boot()["id"]
    acts = h.request("GET", f"/v2.1/servers/{sid}/os-instance-actions").json
    (act,) = acts["instanceActions"]
    assert set(act) == {"action", "instance_uuid", "message", "project_id",
                        "request_id", "start_time", "user_id"}
    rid = act["request_id"]
    db_actions.event_start(h.db, sid, rid, "compute_build", "node1")
    path = f"/v2.1/servers/{sid}/os-instance-actions/{rid}"
    user = h.request("GET", path).json["instanceAction"]
    assert "events" not in user
    admin = h.admin("GET", path).json["instanceAction"]
    assert [e["event"] for e in admin["events"]] == ["compute_build"]
    assert set(admin["events"][0]) == {"event", "start_time", "finish_time",
                                       "result", "traceback"}
    resp = h.request("GET", f"/v2.1/servers/{sid}/os-instance-actions/x")
    assert resp.status_int == 404


def test_user_data_and_metadata_stored():
    h = _ready()
    ud = base64.b64encode(b"#!/bin/sh\necho hi\n").decode()
    key = h.request("POST", "/v2.1/os-keypairs",
                    {"keypair": {"name": "mykey"}}).json["keypair"]
    sid = h.boot(user_data=ud, metadata={"k": "v"}, key_name="mykey")["id"]
    inst = db_instances.get(h.db, sid)
    assert inst["user_data"] == ud and inst["metadata"] == {"k": "v"}
    assert inst["key_data"] == key["public_key"]
    body = h.admin("GET", f"/v2.1/servers/{sid}", version="2.3").json
    assert body["server"]["OS-EXT-SRV-ATTR:user_data"] == ud
    assert body["server"]["key_name"] == "mykey"
