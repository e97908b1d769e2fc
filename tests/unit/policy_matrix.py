"""The persona matrix: every API route, the call that exercises it, and
the status each persona gets (Nova's, Glance's and Neutron's defaults).

One entry per row of ``api.routes.COMPUTE_ROUTES``, ``IMAGE_ROUTES`` and
``api.networking.ROUTES``, keyed ``(area, method, route path)``; a route
without an entry fails ``test_policy_personas``. Adding a route is adding
one line here: ``call(path, admin, member, reader, other, body=...)``.

Personas (``test_policy_personas.TOKENS``): ``admin`` (admin role, its own
project), ``member`` and ``reader`` of the project that owns the world's
resources, and ``other``, a member of another project. ``{name}`` in a
path or body is filled from the world the test builds: ``project`` (the
caller's own project id), ``server``, ``port``, ``request_id``,
``flavor``, ``private_flavor``, ``spec_key``, ``keypair``, ``image``,
``image_member``, ``network``, ``subnet``, ``public_image``,
``member_project``. Bodies may
be dicts (sent as JSON) or lists (JSON patch documents). A route that needs
more in the world (an aggregate, a quota row…) passes ``setup``: a
function ``(harness, world) -> {name: value}`` run on each fresh world
before the call, whose values fill ``{name}`` too; what it changes is part
of the "before" a refused call must leave untouched.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from pyct_driver.api import flavors

COMPUTE, IMAGE, NETWORK = "compute", "image", "networking"
PERSONAS = ("admin", "member", "reader", "other")


@dataclasses.dataclass(frozen=True)
class Call:
    path: str
    expect: tuple[int, int, int, int]      # admin, member, reader, other
    body: object = None
    version: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    setup: Callable[..., dict] | None = None


def call(path: str, admin: int, member: int, reader: int, other: int,
         body: object = None, version: str | None = None,
         headers: dict | None = None,
         setup: Callable[..., dict] | None = None) -> Call:
    return Call(path, (admin, member, reader, other), body, version,
                tuple((headers or {}).items()), setup)


def same(path: str, status: int, **kw) -> Call:
    """A route every persona gets the same answer from (its own things:
    flavors, key pairs, lists scoped to the caller's project)."""
    return call(path, status, status, status, status, **kw)


S = "/v2.1/servers/{server}"
I = "/image/v2/images/{image}"
F = "/v2.1/flavors/{flavor}"
Q = "/v2.1/os-quota-sets/{member_project}"
AG = "/v2.1/os-aggregates/{aggregate_id}"
_PATCH = {"Content-Type": "application/openstack-images-v2.1-json-patch"}
_FLAVOR = {"flavor": {"name": "new", "ram": 512, "vcpus": 1, "disk": 1}}
_SERVER = {"server": {"name": "new", "imageRef": "{public_image}",
                      "flavorRef": "1", "networks": "none"}}
_ACCESS = {"addTenantAccess": {"tenant": "f00d"}}
_IMAGE = {"name": "new", "disk_format": "raw", "container_format": "bare"}
_OCTETS = {"Content-Type": "application/octet-stream"}
_SPEC = {"extra_specs": {"quota:cpu_period": "20000"}}


def _admin_get(h, path: str, version: str | None = None) -> dict:
    resp = h.request("GET", path, token="admin:ad0001", version=version)
    assert resp.status_int == 200, resp.text
    return resp.json


def _idle_service(h, _w) -> dict:
    h.add_host("node2")
    return {"service_id": str(_admin_get(
        h, "/v2.1/os-services?host=node2")["services"][0]["id"])}


def _hypervisor(h, _w) -> dict:
    return {"hypervisor_id": str(_admin_get(h, "/v2.1/os-hypervisors")[
        "hypervisors"][0]["id"])}


def _aggregate(h, _w) -> dict:
    resp = h.request("POST", "/v2.1/os-aggregates",
                     {"aggregate": {"name": "agg1"}}, token="admin:ad0001")
    assert resp.status_int == 200, resp.text
    return {"aggregate_id": str(resp.json["aggregate"]["id"])}



SG = "/networking/v2.0/security-groups"
SGR = "/networking/v2.0/security-group-rules"


def _secgroup(h, _w) -> dict:
    """A group of the world's project, with its default egress rule."""
    resp = h.request("POST", SG, {"security_group": {"name": "g"}},
                     token="alice:c0ffee01")
    assert resp.status_int == 201, resp.text
    group = resp.json["security_group"]
    return {"sg": group["id"],
            "sg_rule": group["security_group_rules"][0]["id"]}


FLOATING_RANGE = "203.0.113.0/28"
FIP = "/networking/v2.0/floatingips"


def _external(h, _w) -> dict:
    nets = h.request("GET", "/networking/v2.0/networks?router:external="
                     "true", token="alice:c0ffee01").json["networks"]
    return {"external": nets[0]["id"]}


def _fip(h, w, port: bool = False) -> dict:
    """A floating IP of the world's project (associated with the
    server's port when ``port``)."""
    body = {"floatingip": {"floating_network_id": _external(h, w)[
        "external"]}}
    if port:
        body["floatingip"]["port_id"] = w["port"]
    resp = h.request("POST", FIP, body, token="alice:c0ffee01")
    assert resp.status_int == 201, resp.text
    fip = resp.json["floatingip"]
    return {"fip": fip["id"], "fip_address": fip["floating_ip_address"]}


def _fip_on_port(h, w) -> dict:
    return _fip(h, w, port=True)


def _queued(h, _w) -> dict:
    """A queued image of the world's project, ready for its data (the
    fake driver accepts any bytes)."""
    resp = h.request("POST", "/image/v2/images", _IMAGE,
                     token="alice:c0ffee01")
    assert resp.status_int == 201, resp.text
    return {"queued": resp.json["id"]}


def _image_tagged(h, w) -> dict:
    resp = h.request("PUT", f"/image/v2/images/{w['image']}/tags/old",
                     token="alice:c0ffee01")
    assert resp.status_int == 204, resp.text
    return {"image_tag": "old"}


def _tagged(h, w) -> dict:
    resp = h.request("PUT", f"/v2.1/servers/{w['server']}/tags/t1",
                     token="alice:c0ffee01", version="2.26")
    assert resp.status_int in (201, 204), resp.text
    return {"tag": "t1"}


def _meta(h, w) -> dict:
    resp = h.request("PUT", f"/v2.1/servers/{w['server']}/metadata/k1",
                     {"meta": {"k1": "v1"}}, token="alice:c0ffee01")
    assert resp.status_int == 200, resp.text
    return {"meta_key": "k1"}


def _net_label(h, w) -> dict:
    resp = h.request("GET", f"/v2.1/servers/{w['server']}/ips",
                     token="alice:c0ffee01")
    assert resp.status_int == 200, resp.text
    return {"net_label": next(iter(resp.json["addresses"]))}


def _group(h, _w) -> dict:
    resp = h.request("POST", "/v2.1/os-server-groups", {"server_group": {
        "name": "g", "policies": ["anti-affinity"]}},
        token="alice:c0ffee01")
    assert resp.status_int == 200, resp.text
    return {"group_id": resp.json["server_group"]["id"]}


_LOCKED = {"lock": None}
MATRIX: dict[tuple[str, str, str], list[Call]] = {
    # -- compute: versions, flavors (admin writes, everyone reads)
    (COMPUTE, "GET", ""): [same("/v2.1/{project}/", 200)],
    (COMPUTE, "GET", "flavors"): [same("/v2.1/flavors", 200)],
    (COMPUTE, "POST", "flavors"): [call("/v2.1/flavors", 200, 403, 403, 403,
                                        body=_FLAVOR)],
    (COMPUTE, "GET", "flavors/detail"): [same("/v2.1/flavors/detail", 200)],
    (COMPUTE, "GET", "flavors/{flavor_id}"): [
        same(F, 200),
        # a private flavor is the projects' it is given to
        call("/v2.1/flavors/{private_flavor}", 200, 200, 200, 404)],
    (COMPUTE, "DELETE", "flavors/{flavor_id}"): [
        call("/v2.1/flavors/{doomed}", 202, 403, 403, 403,
             setup=lambda h, _w: {"doomed": flavors.create_flavor(
                 h.db, "doomed", 1, 64, 1, flavorid="doomed")["flavorid"]})],
    (COMPUTE, "GET", "flavors/{flavor_id}/os-flavor-access"): [
        call("/v2.1/flavors/{private_flavor}/os-flavor-access", 200, 403,
             403, 403)],
    (COMPUTE, "POST", "flavors/{flavor_id}/action"): [
        call("/v2.1/flavors/{private_flavor}/action", 200, 403, 403, 403,
             body=_ACCESS),
        call("/v2.1/flavors/{private_flavor}/action", 200, 403, 403, 403,
             body={"removeTenantAccess": {"tenant": "{member_project}"}})],
    (COMPUTE, "GET", "flavors/{flavor_id}/os-extra_specs"): [
        same(F + "/os-extra_specs", 200)],
    (COMPUTE, "POST", "flavors/{flavor_id}/os-extra_specs"): [
        call(F + "/os-extra_specs", 200, 403, 403, 403, body=_SPEC)],
    (COMPUTE, "GET", "flavors/{flavor_id}/os-extra_specs/{key}"): [
        same(F + "/os-extra_specs/{spec_key}", 200)],
    (COMPUTE, "PUT", "flavors/{flavor_id}/os-extra_specs/{key}"): [
        call(F + "/os-extra_specs/{spec_key}", 200, 403, 403, 403,
             body={"{spec_key}": "2048"})],
    (COMPUTE, "DELETE", "flavors/{flavor_id}/os-extra_specs/{key}"): [
        call(F + "/os-extra_specs/{spec_key}", 200, 403, 403, 403)],
    # -- compute: servers (readers read, members act, others 404)
    (COMPUTE, "GET", "servers"): [same("/v2.1/servers", 200)],
    (COMPUTE, "POST", "servers"): [
        call("/v2.1/servers", 202, 202, 403, 202, body=_SERVER,
             version="2.37")],
    (COMPUTE, "GET", "servers/detail"): [same("/v2.1/servers/detail", 200)],
    (COMPUTE, "GET", "servers/{server_id}"): [call(S, 200, 200, 200, 404)],
    (COMPUTE, "PUT", "servers/{server_id}"): [
        call(S, 200, 200, 403, 404, body={"server": {"name": "renamed"}})],
    (COMPUTE, "DELETE", "servers/{server_id}"): [
        call(S, 204, 204, 403, 404)],
    (COMPUTE, "POST", "servers/{server_id}/action"): [
        call(S + "/action", 202, 202, 403, 404,
             body={"reboot": {"type": "SOFT"}}),
        call(S + "/action", 202, 202, 403, 404, body={"os-stop": None}),
        call(S + "/action", 202, 202, 403, 404, body={"pause": None}),
        call(S + "/action", 202, 202, 403, 404, body={"suspend": None}),
        call(S + "/action", 200, 200, 403, 404, body={"rescue": None}),
        # allowed, then refused for the state: not in rescue
        call(S + "/action", 409, 409, 403, 404, body={"unrescue": None}),
        call(S + "/action", 200, 200, 403, 404, version="2.5",
             body={"os-getSerialConsole": {"type": "serial"}}),
        call(S + "/action", 202, 202, 403, 404,
             body={"resize": {"flavorRef": "{private_flavor}"}}),
        # allowed, then refused for the state: no resize to confirm
        call(S + "/action", 409, 409, 403, 404,
             body={"confirmResize": None}),
        call(S + "/action", 409, 409, 403, 404,
             body={"revertResize": None}),
        call(S + "/action", 202, 202, 403, 404,
             body={"rebuild": {"imageRef": "{public_image}"}}),
        # admins only; allowed, then refused: no other host to go to
        call(S + "/action", 400, 403, 403, 404, body={"migrate": None}),
        call(S + "/action", 400, 403, 403, 404, version="2.25",
             body={"os-migrateLive": {"host": None,
                                      "block_migration": "auto"}}),
        # console output may hold secrets: members only, as in Nova
        call(S + "/action", 200, 200, 403, 404,
             body={"os-getConsoleOutput": {}}),
        call(S + "/action", 202, 202, 403, 404, setup=_fip,
             body={"addFloatingIp": {"address": "{fip_address}"}}),
        call(S + "/action", 202, 202, 403, 404, setup=_fip_on_port,
             body={"removeFloatingIp": {"address": "{fip_address}"}}),
        call(S + "/action", 202, 202, 403, 404, body=_LOCKED),
        call(S + "/action", 202, 202, 403, 404, setup=_secgroup,
             body={"addSecurityGroup": {"name": "{sg}"}}),
        call(S + "/action", 202, 202, 403, 404,
             body={"removeSecurityGroup": {"name": "default"}}),
        call(S + "/action", 202, 202, 403, 404, body={"unlock": None}),
        call(S + "/action", 202, 202, 403, 404,
             body={"changePassword": {"adminPass": "s3cret"}}),
        # no container can dump a kernel: a clean 400 for those allowed
        call(S + "/action", 400, 400, 403, 404, version="2.17",
             body={"trigger_crash_dump": None}),
        call(S + "/action", 202, 202, 403, 404, version="2.45",
             body={"createImage": {"name": "snap"}}),
        call(S + "/action", 202, 202, 403, 404, body={"createBackup": {
            "name": "bk", "backup_type": "daily", "rotation": 1}}),
        call(S + "/action", 202, 202, 403, 404, body={"shelve": None}),
        # offloading is an admin's (then refused: not shelved)
        call(S + "/action", 409, 403, 403, 404,
             body={"shelveOffload": None}),
        call(S + "/action", 409, 409, 403, 404, body={"unshelve": None})],
    (COMPUTE, "GET", "servers/{server_id}/os-instance-actions"): [
        call(S + "/os-instance-actions", 200, 200, 200, 404)],
    (COMPUTE, "GET",
     "servers/{server_id}/os-instance-actions/{request_id}"): [
        call(S + "/os-instance-actions/{request_id}", 200, 200, 200, 404)],
    (COMPUTE, "GET", "servers/{server_id}/os-interface"): [
        call(S + "/os-interface", 200, 200, 200, 404)],
    (COMPUTE, "POST", "servers/{server_id}/os-interface"): [
        call(S + "/os-interface", 200, 200, 403, 404,
             body={"interfaceAttachment": {}})],
    (COMPUTE, "GET", "servers/{server_id}/os-interface/{port_id}"): [
        call(S + "/os-interface/{port}", 200, 200, 200, 404)],
    (COMPUTE, "DELETE", "servers/{server_id}/os-interface/{port_id}"): [
        call(S + "/os-interface/{port}", 202, 202, 403, 404)],
    # -- compute: key pairs belong to their user; everyone has "kp"
    (COMPUTE, "GET", "os-keypairs"): [same("/v2.1/os-keypairs", 200)],
    (COMPUTE, "POST", "os-keypairs"): [
        same("/v2.1/os-keypairs", 200, body={"keypair": {"name": "new"}})],
    (COMPUTE, "GET", "os-keypairs/{keypair_name}"): [
        same("/v2.1/os-keypairs/{keypair}", 200)],
    (COMPUTE, "DELETE", "os-keypairs/{keypair_name}"): [
        same("/v2.1/os-keypairs/{keypair}", 202)],
    # -- image: the world's image is the project's, shared with another
    (IMAGE, "GET", "v2/images"): [same("/image/v2/images", 200)],
    (IMAGE, "GET", "v2/images/{image_id}"): [call(I, 200, 200, 200, 404)],
    (IMAGE, "PATCH", "v2/images/{image_id}"): [
        call(I, 200, 200, 403, 404, headers=_PATCH, body=[
            {"op": "replace", "path": "/name", "value": "renamed"}])],
    # Glance: downloading takes a member; 204: the image has no data
    (IMAGE, "GET", "v2/images/{image_id}/file"): [
        call(I + "/file", 204, 204, 403, 404)],
    (IMAGE, "GET", "v2/images/{image_id}/members"): [
        call(I + "/members", 200, 200, 200, 404)],
    (IMAGE, "POST", "v2/images/{image_id}/members"): [
        call(I + "/members", 200, 200, 403, 404,
             body={"member": "f00d"})],
    (IMAGE, "GET", "v2/images/{image_id}/members/{member_id}"): [
        call(I + "/members/{image_member}", 200, 200, 200, 404)],
    # only the member project itself (or an admin) sets its status
    (IMAGE, "PUT", "v2/images/{image_id}/members/{member_id}"): [
        call(I + "/members/{image_member}", 200, 403, 403, 404,
             body={"status": "accepted"})],
    (IMAGE, "DELETE", "v2/images/{image_id}/members/{member_id}"): [
        call(I + "/members/{image_member}", 204, 204, 403, 404)],
    (IMAGE, "POST", "v2/images"): [
        call("/image/v2/images", 201, 201, 403, 201, body=_IMAGE)],
    (IMAGE, "DELETE", "v2/images/{image_id}"): [call(I, 204, 204, 403, 404)],
    (IMAGE, "PUT", "v2/images/{image_id}/file"): [
        call("/image/v2/images/{queued}/file", 204, 204, 403, 404,
             body={"tarball": "bytes"}, headers=_OCTETS, setup=_queued)],
    (IMAGE, "POST", "v2/images/{image_id}/actions/deactivate"): [
        call(I + "/actions/deactivate", 204, 204, 403, 404)],
    (IMAGE, "POST", "v2/images/{image_id}/actions/reactivate"): [
        call(I + "/actions/reactivate", 204, 204, 403, 404)],
    (IMAGE, "PUT", "v2/images/{image_id}/tags/{tag}"): [
        call(I + "/tags/new", 204, 204, 403, 404)],
    (IMAGE, "DELETE", "v2/images/{image_id}/tags/{tag}"): [
        call(I + "/tags/{image_tag}", 204, 204, 403, 404,
             setup=_image_tagged)],
    (IMAGE, "GET", "v2/schemas/image"): [
        same("/image/v2/schemas/image", 200)],
    # -- networking: reads only; another project's items are 404s
    (NETWORK, "GET", "v2.0/networks"): [
        same("/networking/v2.0/networks", 200)],
    (NETWORK, "GET", "v2.0/networks/{network_id}"): [
        call("/networking/v2.0/networks/{network}", 200, 200, 200, 404)],
    (NETWORK, "GET", "v2.0/subnets"): [
        same("/networking/v2.0/subnets", 200)],
    (NETWORK, "GET", "v2.0/subnets/{subnet_id}"): [
        call("/networking/v2.0/subnets/{subnet}", 200, 200, 200, 404)],
    (NETWORK, "GET", "v2.0/ports"): [same("/networking/v2.0/ports", 200)],
    (NETWORK, "GET", "v2.0/ports/{port_id}"): [
        call("/networking/v2.0/ports/{port}", 200, 200, 200, 404)],
    # floating IPs: a project's members hold and associate its own
    (NETWORK, "GET", "v2.0/floatingips"): [same(FIP, 200, setup=_fip)],
    (NETWORK, "POST", "v2.0/floatingips"): [
        call(FIP, 201, 201, 403, 201, setup=_external,
             body={"floatingip": {"floating_network_id": "{external}"}})],
    (NETWORK, "GET", "v2.0/floatingips/{floatingip_id}"): [
        call(FIP + "/{fip}", 200, 200, 200, 404, setup=_fip)],
    (NETWORK, "PUT", "v2.0/floatingips/{floatingip_id}"): [
        call(FIP + "/{fip}", 200, 200, 403, 404, setup=_fip,
             body={"floatingip": {"port_id": "{port}"}})],
    (NETWORK, "DELETE", "v2.0/floatingips/{floatingip_id}"): [
        call(FIP + "/{fip}", 204, 204, 403, 404, setup=_fip)],
    (NETWORK, "GET", "v2.0/extensions"): [
        same("/networking/v2.0/extensions", 200)],
    # -- security groups: a project's members write, readers read
    (NETWORK, "GET", "v2.0/security-groups"): [same(SG, 200)],
    (NETWORK, "POST", "v2.0/security-groups"): [
        call(SG, 201, 201, 403, 201, body={"security_group": {
            "name": "web"}})],
    (NETWORK, "GET", "v2.0/security-groups/{security_group_id}"): [
        call(SG + "/{sg}", 200, 200, 200, 404, setup=_secgroup)],
    (NETWORK, "PUT", "v2.0/security-groups/{security_group_id}"): [
        call(SG + "/{sg}", 200, 200, 403, 404, setup=_secgroup,
             body={"security_group": {"description": "d"}})],
    (NETWORK, "DELETE", "v2.0/security-groups/{security_group_id}"): [
        call(SG + "/{sg}", 204, 204, 403, 404, setup=_secgroup)],
    (NETWORK, "GET", "v2.0/security-group-rules"): [same(SGR, 200)],
    (NETWORK, "POST", "v2.0/security-group-rules"): [
        call(SGR, 201, 201, 403, 404, setup=_secgroup, body={
            "security_group_rule": {"security_group_id": "{sg}",
                                    "direction": "ingress",
                                    "protocol": "tcp",
                                    "port_range_min": 22}})],
    (NETWORK, "GET", "v2.0/security-group-rules/{security_group_rule_id}"):
        [call(SGR + "/{sg_rule}", 200, 200, 200, 404, setup=_secgroup)],
    (NETWORK, "DELETE",
     "v2.0/security-group-rules/{security_group_rule_id}"): [
        call(SGR + "/{sg_rule}", 204, 204, 403, 404, setup=_secgroup)],
    (COMPUTE, "GET", "os-security-groups"): [
        same("/v2.1/os-security-groups", 200)],
    (COMPUTE, "GET", "os-security-groups/{group_id}"): [
        call("/v2.1/os-security-groups/{sg}", 200, 200, 200, 404,
             setup=_secgroup)],
    (COMPUTE, "GET", "servers/{server_id}/os-security-groups"): [
        call(S + "/os-security-groups", 200, 200, 200, 404)],
    # -- quotas and limits (admin writes; a project reads its own)
    (COMPUTE, "GET", "os-quota-sets/{project_id}"): [
        call(Q, 200, 200, 200, 403)],
    (COMPUTE, "PUT", "os-quota-sets/{project_id}"): [
        call(Q, 200, 403, 403, 403,
             body={"quota_set": {"instances": 5}})],
    (COMPUTE, "DELETE", "os-quota-sets/{project_id}"): [
        call(Q, 202, 403, 403, 403)],
    (COMPUTE, "GET", "os-quota-sets/{project_id}/defaults"): [
        same(Q + "/defaults", 200)],
    (COMPUTE, "GET", "os-quota-sets/{project_id}/detail"): [
        call(Q + "/detail", 200, 200, 200, 403)],
    (COMPUTE, "GET", "os-quota-class-sets/{class_name}"): [
        call("/v2.1/os-quota-class-sets/default", 200, 403, 403, 403)],
    (COMPUTE, "PUT", "os-quota-class-sets/{class_name}"): [
        call("/v2.1/os-quota-class-sets/default", 200, 403, 403, 403,
             body={"quota_class_set": {"instances": 5}})],
    (COMPUTE, "GET", "limits"): [same("/v2.1/limits", 200)],
    (NETWORK, "GET", "v2.0/quotas/{project_id}"): [
        call("/networking/v2.0/quotas/{member_project}", 200, 200, 200,
             403)],
    (NETWORK, "GET", "v2.0/quotas/{project_id}/details"): [
        call("/networking/v2.0/quotas/{member_project}/details", 200, 200,
             200, 403)],
    # -- the operator's views (admin only, but zones and own usage)
    (COMPUTE, "GET", "os-services"): [
        call("/v2.1/os-services", 200, 403, 403, 403)],
    (COMPUTE, "PUT", "os-services/{service_id}"): [
        call("/v2.1/os-services/disable", 200, 403, 403, 403,
             body={"host": "node1", "binary": "nova-compute"})],
    (COMPUTE, "DELETE", "os-services/{service_id}"): [
        call("/v2.1/os-services/{service_id}", 204, 403, 403, 403,
             setup=_idle_service)],
    (COMPUTE, "GET", "os-hypervisors"): [
        call("/v2.1/os-hypervisors", 200, 403, 403, 403)],
    (COMPUTE, "GET", "os-hypervisors/detail"): [
        call("/v2.1/os-hypervisors/detail", 200, 403, 403, 403)],
    (COMPUTE, "GET", "os-hypervisors/statistics"): [
        call("/v2.1/os-hypervisors/statistics", 200, 403, 403, 403)],
    (COMPUTE, "GET", "os-hypervisors/{hypervisor_id}"): [
        call("/v2.1/os-hypervisors/{hypervisor_id}", 200, 403, 403, 403,
             setup=_hypervisor)],
    (COMPUTE, "GET", "os-hypervisors/{hypervisor_id}/uptime"): [
        call("/v2.1/os-hypervisors/{hypervisor_id}/uptime", 200, 403, 403,
             403, setup=_hypervisor)],
    (COMPUTE, "GET", "os-hypervisors/{pattern}/search"): [
        call("/v2.1/os-hypervisors/node1/search", 200, 403, 403, 403)],
    (COMPUTE, "GET", "os-hypervisors/{pattern}/servers"): [
        call("/v2.1/os-hypervisors/node1/servers", 200, 403, 403, 403)],
    (COMPUTE, "GET", "os-availability-zone"): [
        same("/v2.1/os-availability-zone", 200)],
    (COMPUTE, "GET", "os-availability-zone/detail"): [
        call("/v2.1/os-availability-zone/detail", 200, 403, 403, 403)],
    (COMPUTE, "GET", "os-aggregates"): [
        call("/v2.1/os-aggregates", 200, 403, 403, 403)],
    (COMPUTE, "POST", "os-aggregates"): [
        call("/v2.1/os-aggregates", 200, 403, 403, 403,
             body={"aggregate": {"name": "new"}})],
    (COMPUTE, "GET", "os-aggregates/{aggregate_id}"): [
        call(AG, 200, 403, 403, 403, setup=_aggregate)],
    (COMPUTE, "PUT", "os-aggregates/{aggregate_id}"): [
        call(AG, 200, 403, 403, 403, setup=_aggregate,
             body={"aggregate": {"name": "renamed"}})],
    (COMPUTE, "DELETE", "os-aggregates/{aggregate_id}"): [
        call(AG, 200, 403, 403, 403, setup=_aggregate)],
    (COMPUTE, "POST", "os-aggregates/{aggregate_id}/action"): [
        call(AG + "/action", 200, 403, 403, 403, setup=_aggregate,
             body={"add_host": {"host": "node1"}})],
    (COMPUTE, "GET", "os-simple-tenant-usage"): [
        call("/v2.1/os-simple-tenant-usage", 200, 403, 403, 403)],
    (COMPUTE, "GET", "os-simple-tenant-usage/{tenant_id}"): [
        call("/v2.1/os-simple-tenant-usage/{member_project}", 200, 200, 200,
             403)],
    (COMPUTE, "GET", "os-migrations"): [
        call("/v2.1/os-migrations", 200, 403, 403, 403)],
    # -- server tags (2.26), topology (2.78), flavor description (2.55)
    (COMPUTE, "GET", "servers/{server_id}/tags"): [
        call(S + "/tags", 200, 200, 200, 404, version="2.26")],
    (COMPUTE, "PUT", "servers/{server_id}/tags"): [
        call(S + "/tags", 200, 200, 403, 404, version="2.26",
             body={"tags": ["a", "b"]})],
    (COMPUTE, "DELETE", "servers/{server_id}/tags"): [
        call(S + "/tags", 204, 204, 403, 404, version="2.26",
             setup=_tagged)],
    (COMPUTE, "GET", "servers/{server_id}/tags/{tag}"): [
        call(S + "/tags/{tag}", 204, 204, 204, 404, version="2.26",
             setup=_tagged)],
    (COMPUTE, "PUT", "servers/{server_id}/tags/{tag}"): [
        call(S + "/tags/new", 201, 201, 403, 404, version="2.26")],
    (COMPUTE, "DELETE", "servers/{server_id}/tags/{tag}"): [
        call(S + "/tags/{tag}", 204, 204, 403, 404, version="2.26",
             setup=_tagged)],
    (COMPUTE, "POST", "servers/{server_id}/remote-consoles"): [
        call(S + "/remote-consoles", 200, 200, 403, 404, version="2.6",
             body={"remote_console": {"protocol": "serial",
                                      "type": "serial"}})],
    (COMPUTE, "GET", "servers/{server_id}/topology"): [
        call(S + "/topology", 200, 200, 200, 404, version="2.78")],
    (COMPUTE, "PUT", "flavors/{flavor_id}"): [
        call(F, 200, 403, 403, 403, version="2.55",
             body={"flavor": {"description": "small"}})],
    # -- server metadata, addresses, passwords, diagnostics, groups
    (COMPUTE, "GET", "servers/{server_id}/metadata"): [
        call(S + "/metadata", 200, 200, 200, 404)],
    (COMPUTE, "POST", "servers/{server_id}/metadata"): [
        call(S + "/metadata", 200, 200, 403, 404,
             body={"metadata": {"a": "b"}})],
    (COMPUTE, "PUT", "servers/{server_id}/metadata"): [
        call(S + "/metadata", 200, 200, 403, 404,
             body={"metadata": {"a": "b"}})],
    (COMPUTE, "GET", "servers/{server_id}/metadata/{key}"): [
        call(S + "/metadata/{meta_key}", 200, 200, 200, 404, setup=_meta)],
    (COMPUTE, "PUT", "servers/{server_id}/metadata/{key}"): [
        call(S + "/metadata/k2", 200, 200, 403, 404,
             body={"meta": {"k2": "v"}})],
    (COMPUTE, "DELETE", "servers/{server_id}/metadata/{key}"): [
        call(S + "/metadata/{meta_key}", 204, 204, 403, 404, setup=_meta)],
    (COMPUTE, "GET", "servers/{server_id}/ips"): [
        call(S + "/ips", 200, 200, 200, 404)],
    (COMPUTE, "GET", "servers/{server_id}/ips/{network_label}"): [
        call(S + "/ips/{net_label}", 200, 200, 200, 404,
             setup=_net_label)],
    (COMPUTE, "GET", "servers/{server_id}/os-server-password"): [
        call(S + "/os-server-password", 200, 200, 200, 404)],
    (COMPUTE, "DELETE", "servers/{server_id}/os-server-password"): [
        call(S + "/os-server-password", 204, 204, 403, 404)],
    (COMPUTE, "GET", "servers/{server_id}/diagnostics"): [
        call(S + "/diagnostics", 200, 403, 403, 404, version="2.48")],
    (COMPUTE, "GET", "os-server-groups"): [
        same("/v2.1/os-server-groups", 200)],
    (COMPUTE, "POST", "os-server-groups"): [
        call("/v2.1/os-server-groups", 200, 200, 403, 200,
             body={"server_group": {"name": "g2",
                                    "policies": ["affinity"]}})],
    (COMPUTE, "GET", "os-server-groups/{group_id}"): [
        call("/v2.1/os-server-groups/{group_id}", 200, 200, 200, 404,
             setup=_group)],
    (COMPUTE, "DELETE", "os-server-groups/{group_id}"): [
        call("/v2.1/os-server-groups/{group_id}", 204, 204, 403, 404,
             setup=_group)],
}
