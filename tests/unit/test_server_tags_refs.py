"""Server tags (2.26, on create 2.52) and what a create request refers to:
ports in use (409 PortInUse), security groups and server groups that do
not exist, other projects' images, flavors, networks and ports (400),
2.74's requested host, 2.90/2.94 hostnames, 2.63 trusted certificates,
device tags; 2.78's topology and 2.49/2.70 interface tags. Every refusal
leaves the database as it was."""

from __future__ import annotations

import pytest

from pyct_driver import states
from pyct_driver.api import images
from pyct_driver.db import instances as db_instances
from pyct_driver.db import networks as db_networks
from pyct_driver.db import tags as db_tags
from tests.unit.test_api_app import Harness

V = "2.96"


@pytest.fixture()
def h():
    h = Harness()
    h.add_host("node1")
    return h


def _active(h: Harness, name: str = "vm", token: str = "alice:p1",
            **extra) -> str:
    sid = h.boot(name, token=token, version=V, **extra)["id"]
    db_instances.update(h.db, sid, {"vm_state": states.ACTIVE,
                                    "task_state": None})
    return sid


def _msg(resp) -> str:
    return list(resp.json.values())[0]["message"]


def test_tags_lifecycle(h):
    sid = _active(h)
    url = f"/v2.1/servers/{sid}/tags"
    assert h.request("GET", url, version=V).json == {"tags": []}
    resp = h.request("PUT", url + "/web", version=V)
    assert resp.status_int == 201 and resp.body == b""
    assert resp.headers["Location"].endswith(f"/servers/{sid}/tags/web")
    assert h.request("PUT", url + "/web", version=V).status_int == 204
    assert h.request("GET", url + "/web", version=V).status_int == 204
    resp = h.request("GET", url + "/nosuch", version=V)
    assert resp.status_int == 404
    assert _msg(resp) == f"Server {sid} has no tag 'nosuch'"
    resp = h.request("PUT", url, {"tags": ["b", "a", "a"]}, version=V)
    assert resp.status_int == 200 and resp.json == {"tags": ["a", "b"]}
    server = h.request("GET", f"/v2.1/servers/{sid}", version=V).json
    assert server["server"]["tags"] == ["a", "b"]
    assert h.request("DELETE", url + "/a", version=V).status_int == 204
    resp = h.request("DELETE", url + "/a", version=V)
    assert resp.status_int == 404
    assert _msg(resp) == f"Instance {sid} has no tag 'a'"
    assert h.request("DELETE", url, version=V).status_int == 204
    assert db_tags.get(h.db, sid) == []


def test_tags_bad_input_changes_nothing(h):
    sid = _active(h)
    url = f"/v2.1/servers/{sid}/tags"
    h.request("PUT", url, {"tags": ["keep"]}, version=V)
    for body in ({"tags": "x"}, {"tags": [1]}, {"tags": ["a,b"]},
                 {"tags": ["x" * 61]}, {"tags": [""]}, {"tag": []}, {},
                 {"tags": [str(i) for i in range(51)]},
                 {"tags": ["a"], "more": 1}):
        resp = h.request("PUT", url, body, version=V)
        assert resp.status_int == 400, body
    resp = h.request("PUT", url, raw=b"{bad", version=V)
    assert resp.status_int == 400
    resp = h.request("PUT", url + "/a,b", version=V)
    assert resp.status_int == 400
    assert _msg(resp).startswith("Tag 'a,b' is invalid. It must be a non "
                                 "empty string without characters '/' "
                                 "and ','.")
    resp = h.request("PUT", url + "/" + "x" * 61, version=V)
    assert resp.status_int == 400
    assert db_tags.get(h.db, sid) == ["keep"]
    h.request("PUT", url, {"tags": [str(i) for i in range(50)]}, version=V)
    resp = h.request("PUT", url + "/one-more", version=V)
    assert resp.status_int == 400
    assert _msg(resp) == "The number of tags exceeded the per-server " \
        "limit 50"


def test_tags_need_226_own_server_and_a_stable_state(h):
    sid = _active(h)
    url = f"/v2.1/servers/{sid}/tags"
    assert h.request("GET", url, version="2.25").status_int == 404
    assert h.request("PUT", url + "/x", version="2.25").status_int == 404
    # another project's server does not exist for bob
    for method, path in (("GET", url), ("PUT", url + "/x"),
                         ("DELETE", url), ("GET", url + "/x")):
        resp = h.request(method, path, token="bob:p2", version=V)
        assert resp.status_int == 404, (method, path)
    assert db_tags.get(h.db, sid) == []
    building = h.boot("b", version=V)["id"]
    resp = h.request("PUT", f"/v2.1/servers/{building}/tags/x", version=V)
    assert resp.status_int == 409
    assert _msg(resp) == (f"Cannot 'update tag' instance {building} while "
                          "it is in vm_state building")
    # an admin may tag another project's server
    assert h.admin("PUT", url + "/ops", version=V).status_int == 201


def test_tags_on_create_252(h):
    sid = h.boot("t", version="2.52", tags=["b", "a"])["id"]
    assert db_tags.get(h.db, sid) == ["a", "b"]
    before = len(db_instances.list_(h.db))
    for version, tags in (("2.51", ["a"]), (V, ["a,b"]),
                          (V, [str(i) for i in range(51)]), (V, "a")):
        resp = h.request("POST", "/v2.1/servers", {"server": {
            "name": "t2", "imageRef": h.image["id"], "flavorRef": "1",
            "networks": "none", "tags": tags}}, version=version)
        assert resp.status_int == 400, (version, tags)
    assert len(db_instances.list_(h.db)) == before


def test_tags_of_a_deleted_server_go_with_it(h):
    sid = _active(h)
    h.request("PUT", f"/v2.1/servers/{sid}/tags/x", version=V)
    db_instances.soft_delete(h.db, sid)
    assert db_tags.get(h.db, sid) == []


def _create(h: Harness, token: str = "alice:p1", body_extra=None,
            version: str = V, **server):
    body = {"server": {"name": "n", "imageRef": h.image["id"],
                       "flavorRef": "1", "networks": "none", **server}}
    body.update(body_extra or {})
    return h.request("POST", "/v2.1/servers", body, token=token,
                     version=version)


def test_port_in_use_is_409_and_other_projects_port_not_found(h):
    net = db_networks.create_network(h.db, "p1", "net1",
                                     db_networks.IpamSettings(), list)
    first = _active(h, networks=[{"uuid": net["id"]}])
    port = db_networks.list_ports(h.db, instance_uuids=[first])[0]["id"]
    count = len(db_instances.list_(h.db))
    resp = _create(h, networks=[{"port": port}])
    assert resp.status_int == 409
    assert resp.json == {"conflictingRequest": {
        "code": 409, "message": f"Port {port} is still in use."}}
    resp = _create(h, token="bob:p2", networks=[{"port": port}])
    assert resp.status_int == 400
    assert _msg(resp) == f"Port id {port} could not be found."
    resp = _create(h, networks=[{
        "port": "6f1e1a4a-3b5d-4c84-9d3c-2f4f1c6c8b11"}])
    assert resp.status_int == 400
    assert len(db_instances.list_(h.db)) == count
    # os-interface attach with a bound port: 409 too
    resp = h.request("POST", f"/v2.1/servers/{first}/os-interface",
                     {"interfaceAttachment": {"port_id": port}}, version=V)
    assert resp.status_int == 409
    assert _msg(resp) == f"Port {port} is still in use."


def test_other_projects_references_are_400(h):
    net = db_networks.create_network(h.db, "p2", "bobnet",
                                     db_networks.IpamSettings(), list)
    private = images.register_image(h.db, "secret", "/nonexistent",
                                    {"disk_format": "raw",
                                     "visibility": "private",
                                     "owner": "p2"})
    count = len(db_instances.list_(h.db))
    resp = _create(h, networks=[{"uuid": net["id"]}])
    assert resp.status_int == 400
    resp = _create(h, imageRef=private["id"])
    assert resp.status_int == 400
    assert _msg(resp) == "Can not find requested image"
    resp = _create(h, flavorRef="nosuch")
    assert resp.status_int == 400
    assert len(db_instances.list_(h.db)) == count


def test_security_groups_and_server_groups_must_exist(h):
    count = len(db_instances.list_(h.db))
    resp = _create(h, security_groups=[{"name": "web"}])
    assert resp.status_int == 400
    assert _msg(resp) == "Unable to find security_group with name or id 'web'"
    group = "0b5b7a2e-8e07-4b57-9a5e-7f1d0d0f3a11"
    resp = _create(h, body_extra={"os:scheduler_hints": {"group": group}})
    assert resp.status_int == 400
    assert _msg(resp) == f"Instance group {group} could not be found."
    resp = _create(h, body_extra={"os:scheduler_hints": {"group": "x"}})
    assert resp.status_int == 400
    assert len(db_instances.list_(h.db)) == count
    # "default" exists; hints Nova's default filters ignore are accepted
    assert _create(h, security_groups=[{"name": "default"}], body_extra={
        "os:scheduler_hints": {"same_host": [], "foo": 1}}
    ).status_int == 202


def test_requested_host_274(h):
    h.add_host("node2")
    assert _create(h, host="node2").status_int == 403
    assert _create(h, token="admin:adminproj", host="node2",
                   version="2.73").status_int == 400
    resp = _create(h, token="admin:adminproj", host="nosuch")
    assert resp.status_int == 400
    assert _msg(resp) == "Compute host nosuch could not be found."
    resp = _create(h, token="admin:adminproj", host="node2",
                   availability_zone="nova:node1")
    assert resp.status_int == 400
    resp = _create(h, token="admin:adminproj", hypervisor_hostname="node2")
    assert resp.status_int == 202
    inst = db_instances.get(h.db, resp.json["server"]["id"])
    assert inst["host"] == "node2"


def test_hostname_290_and_fqdn_294(h):
    resp = _create(h, hostname="web-1")
    assert resp.status_int == 202
    sid = resp.json["server"]["id"]
    assert db_instances.get(h.db, sid)["hostname"] == "web-1"
    assert _create(h, hostname="web-1", version="2.89").status_int == 400
    assert _create(h, hostname="a.example.org",
                   version="2.93").status_int == 400
    assert _create(h, hostname="a.example.org").status_int == 202
    resp = _create(h, hostname="one", max_count=2)
    assert resp.status_int == 400
    assert _msg(resp) == ("Unable to allocate a single hostname to multiple "
                          "instances")
    resp = h.request("PUT", f"/v2.1/servers/{sid}",
                     {"server": {"hostname": "renamed"}}, version="2.90")
    assert resp.status_int == 200
    assert resp.json["server"]["OS-EXT-SRV-ATTR:hostname"] == "renamed"
    assert h.request("PUT", f"/v2.1/servers/{sid}", {"server": {
        "hostname": "x"}}, version="2.89").status_int == 400


def test_trusted_certs_and_device_tags_end_in_error_as_nova(h):
    resp = _create(h, trusted_image_certificates=["cert-1"])
    assert resp.status_int == 202
    sid = resp.json["server"]["id"]
    server = h.request("GET", f"/v2.1/servers/{sid}", version=V).json
    assert server["server"]["status"] == "ERROR"
    assert server["server"]["fault"]["message"] == (
        f"Build of instance {sid} aborted: Trusted image certificates "
        "provided on host that does not support certificate validation.")
    assert h.compute.calls == []
    assert _create(h, trusted_image_certificates=[],
                   version=V).status_int == 400
    assert _create(h, trusted_image_certificates=["a"],
                   version="2.62").status_int == 400
    net = db_networks.create_network(h.db, "p1", "net1",
                                     db_networks.IpamSettings(), list)
    resp = _create(h, networks=[{"uuid": net["id"], "tag": "nic1"}])
    assert resp.status_int == 202
    server = h.request("GET", f"/v2.1/servers/{resp.json['server']['id']}",
                       version=V).json["server"]
    assert server["status"] == "ERROR"
    assert "tagged devices" in server["fault"]["message"]
    # 2.37-2.41 take no device tags at all
    assert _create(h, version="2.41", networks=[
        {"uuid": net["id"], "tag": "x"}]).status_int == 400


def test_topology_278(h):
    sid = _active(h)
    url = f"/v2.1/servers/{sid}/topology"
    assert h.request("GET", url, version="2.77").status_int == 404
    resp = h.request("GET", url, version="2.78")
    assert resp.status_int == 200
    assert resp.json == {"nodes": [], "pagesize_kb": None}
    assert h.request("GET", url, token="bob:p2",
                     version=V).status_int == 404


def test_interface_tags_249_270(h):
    net = db_networks.create_network(h.db, "p1", "net1",
                                     db_networks.IpamSettings(), list)
    sid = _active(h, networks=[{"uuid": net["id"]}])
    url = f"/v2.1/servers/{sid}/os-interface"
    listed = h.request("GET", url, version="2.70").json
    assert listed["interfaceAttachments"][0]["tag"] is None
    assert "tag" not in h.request("GET", url, version="2.69").json[
        "interfaceAttachments"][0]
    body = {"interfaceAttachment": {"net_id": net["id"], "tag": "t"}}
    assert h.request("POST", url, body, version="2.48").status_int == 400
    resp = h.request("POST", url, body, version="2.49")
    assert resp.status_int == 400
    assert _msg(resp) == ("Tagged network interface attachment is not "
                          "supported for this server instance.")
    assert len(db_networks.list_ports(h.db, instance_uuids=[sid])) == 1


def test_instance_actions_per_microversion(h):
    sid = _active(h)
    url = f"/v2.1/servers/{sid}/os-instance-actions"
    old = h.request("GET", url, version="2.57").json["instanceActions"][0]
    assert "updated_at" not in old
    new = h.request("GET", url, version="2.58").json["instanceActions"][0]
    assert new["updated_at"]
    req_id = new["request_id"]
    assert h.request("GET", url + "?limit=1", version="2.58").json[
        "links"][0]["href"].endswith(f"limit=1&marker={req_id}")
    assert h.request("GET", url + "?marker=nosuch",
                     version="2.58").status_int == 400
    assert h.request("GET", url + "?changes-since=x",
                     version="2.58").status_int == 400
    assert h.request("GET", url + "?changes-since=2999-01-01T00:00:00",
                     version="2.58").json["instanceActions"] == []
    shown = h.request("GET", f"{url}/{req_id}", version="2.50").json
    assert "events" not in shown["instanceAction"]
    shown = h.request("GET", f"{url}/{req_id}", version="2.51").json
    assert shown["instanceAction"]["events"] == []
    db_instances.soft_delete(h.db, sid)
    assert h.request("GET", url, version="2.20").status_int == 404
    assert h.request("GET", url, version="2.21").status_int == 200
