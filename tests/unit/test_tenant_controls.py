"""Tenant-controlled fields cannot reach host controls.

A tenant sets server metadata, scheduler hints, user data and a key; an
image may carry properties; only the flavor (admin-owned) may carry
``pyct:privileged`` and ``quota:*`` limits. The instance spec the compute
manager builds from the database must stay unprivileged with exactly the
flavor's limits whatever the tenant wrote, and only an admin may put
``pyct:privileged`` on a flavor.
"""

from __future__ import annotations

import json

import pytest

from pyct_driver import extra_specs
from pyct_driver.api import flavors, images
from pyct_driver.compute.specs import instance_spec
from pyct_driver.db import instances as db_instances
from pyct_driver.virt.cgroups import base as cg_base
from tests.unit.test_api_app import Harness

HOSTILE = {"pyct:privileged": "true", "quota:cpu_shares": "262144",
           "quota:cpu_quota": "-1", "pyct:pids_max": "4194304",
           "hw:cpu_policy": "dedicated", "privileged": "true"}


def _spec(h: Harness, server: dict):
    return instance_spec(h.db, db_instances.get(h.db, server["id"]))


def _limits(spec):
    f = spec.flavor
    return cg_base.limits_from_flavor(f.vcpus, f.memory_mb, f.swap_mb,
                                      f.extra_specs, default_pids_max=1024,
                                      block_device=None)


def _flavor_limits():
    return cg_base.limits_from_flavor(1, 512, 0, {}, default_pids_max=1024,
                                      block_device=None)


def _assert_unprivileged(spec) -> None:
    assert spec.flavor.extra_specs == {}
    assert not extra_specs.privileged_from(spec.flavor.extra_specs)
    assert spec.privileged is False
    assert _limits(spec) == _flavor_limits()


@pytest.mark.parametrize("field", ["metadata", "scheduler_hints",
                                   "user_data"])
def test_tenant_fields_do_not_make_a_privileged_guest(field):
    h = Harness()
    h.add_host()
    extra: dict = {}
    body_extra: dict = {}
    if field == "metadata":
        extra["metadata"] = HOSTILE
    elif field == "user_data":
        import base64
        extra["user_data"] = base64.b64encode(
            b"#cloud-config\npyct:privileged: true\n").decode()
    server = {"name": "vm", "imageRef": h.image["id"], "flavorRef": "1",
              "networks": "none", **extra}
    if field == "scheduler_hints":
        body_extra["os:scheduler_hints"] = dict(HOSTILE, force_hosts="node1")
    resp = h.request("POST", "/v2.1/servers",
                     {"server": server, **body_extra}, version="2.37")
    # refusing the hints would be as good; ignoring them is what Nova does
    if resp.status_int == 400:
        return
    assert resp.status_int == 202, resp.text
    spec = _spec(h, resp.json["server"])
    _assert_unprivileged(spec)
    if field == "metadata":
        # kept as plain metadata for the guest to read, nothing more
        assert spec.metadata == HOSTILE


def test_image_property_privileged_is_ignored():
    h = Harness()
    h.add_host()
    image = images.register_image(h.db, "evil", "/nonexistent",
                                  {"disk_format": "raw", **HOSTILE})
    server = h.boot(imageRef=image["id"])
    spec = _spec(h, server)
    _assert_unprivileged(spec)


def test_image_properties_a_tenant_patches_are_ignored():
    """An owner may now set any custom property on its own image (Glance
    PATCH); none of them reaches a host control."""
    h = Harness()
    h.add_host()
    image = images.register_image(h.db, "mine", "/nonexistent",
                                  {"visibility": "private", "owner": "p1"})
    ops = [{"op": "add", "path": f"/{key.replace('/', '~1')}",
            "value": value} for key, value in HOSTILE.items()]
    resp = h.request("PATCH", f"/image/v2/images/{image['id']}",
                     raw=json.dumps(ops).encode(), headers={
                         "Content-Type": "application/openstack-images-"
                                         "v2.1-json-patch"})
    assert resp.status_int == 200, resp.text
    assert all(resp.json[k] == v for k, v in HOSTILE.items())
    server = h.boot(imageRef=image["id"])
    spec = _spec(h, server)
    assert spec.image_properties == HOSTILE
    _assert_unprivileged(spec)


def test_image_properties_a_tenant_creates_with_are_ignored():
    """A tenant may create an image with any custom property (Glance
    POST); none of them reaches a host control."""
    h = Harness()
    h.add_host()
    resp = h.request("POST", "/image/v2/images", {
        "name": "mine", "disk_format": "raw", "container_format": "bare",
        "visibility": "private", **HOSTILE})
    assert resp.status_int == 201, resp.text
    image = resp.json
    resp = h.request("PUT", f"/image/v2/images/{image['id']}/file",
                     raw=b"rootfs", headers={
                         "Content-Type": "application/octet-stream"})
    assert resp.status_int == 204, resp.text
    spec = _spec(h, h.boot(imageRef=image["id"]))
    assert spec.image_properties == HOSTILE
    _assert_unprivileged(spec)


def test_tenant_cannot_change_the_operators_images():
    h = Harness()
    for method, path in (("PUT", f"/image/v2/images/{h.image['id']}/file"),
                         ("DELETE", f"/image/v2/images/{h.image['id']}"),
                         ("POST", f"/image/v2/images/{h.image['id']}"
                                  "/actions/deactivate"),
                         ("POST", "/v2/images"),
                         ("PATCH", f"/v2/images/{h.image['id']}"),
                         ("PUT", f"/v2/images/{h.image['id']}/file")):
        resp = h.request(method, path, {"name": "x", "pyct:privileged": "1"},
                         headers={"Content-Type":
                                  "application/octet-stream"}
                         if method == "PUT" else None)
        assert resp.status_int in (403, 404, 405), (method, path,
                                                    resp.text)
    assert h.request("GET", f"/image/v2/images/{h.image['id']}").json[
        "status"] == "active"
    # the operator's image has no owner: only an admin may change it
    resp = h.request("PATCH", f"/image/v2/images/{h.image['id']}",
                     raw=b'[{"op": "add", "path": "/pyct:privileged", '
                         b'"value": "1"}]',
                     headers={"Content-Type": "application/openstack-"
                                              "images-v2.1-json-patch"})
    assert resp.status_int == 403, resp.text
    assert "pyct:privileged" not in h.request(
        "GET", f"/image/v2/images/{h.image['id']}").json


def test_privileged_extra_spec_is_admin_only():
    h = Harness()
    base = "/v2.1/flavors/1/os-extra_specs"
    body = {"extra_specs": {"pyct:privileged": "true"}}
    assert h.request("POST", base, body).status_int == 403
    assert h.request("PUT", base + "/pyct:privileged",
                     {"pyct:privileged": "true"}).status_int == 403
    assert h.request("POST", base, {"extra_specs": {
        "quota:cpu_shares": "262144"}}).status_int == 403
    resp = h.request("POST", "/v2.1/flavors", {"flavor": {
        "name": "mine", "ram": 64, "vcpus": 1, "disk": 1}})
    assert resp.status_int == 403
    assert h.admin("GET", base).json == {"extra_specs": {}}
    # an admin may, and a server of that flavor is then privileged
    assert h.admin("POST", base, body).status_int == 200
    h.add_host()
    spec = _spec(h, h.boot())
    assert spec.privileged is True


def test_member_flavor_is_unprivileged_with_its_limits():
    h = Harness()
    h.add_host()
    flavors.create_flavor(h.db, "limited", 2, 256, 1, flavorid="lim",
                          extra_specs={"quota:cpu_shares": "300",
                                       "pyct:pids_max": "64"})
    spec = _spec(h, h.boot(flavorRef="lim", metadata=HOSTILE))
    assert spec.privileged is False
    limits = _limits(spec)
    assert (limits.cpu_shares, limits.pids_max, limits.memory_bytes) == \
        (300, 64, 256 << 20)
    assert limits.cpu_quota_us == 2 * cg_base.DEFAULT_CPU_PERIOD_US
    assert limits.devices == cg_base.DEFAULT_DEVICES


def test_host_root_spec_refused_unless_allowed():
    """A host-root guest is root on the host: the flavor API refuses the
    spec (even to an admin) while the operator has not allowed them."""
    base = "/v2.1/flavors/1/os-extra_specs"
    body = {"extra_specs": {"pyct:host_root": "true"}}
    h = Harness()
    resp = h.admin("POST", base, body)
    assert resp.status_int == 400
    assert "allow_host_root_guests" in resp.json["badRequest"]["message"]
    resp = h.admin("PUT", base + "/pyct:host_root", {"pyct:host_root": "true"})
    assert resp.status_int == 400
    assert h.admin("GET", base).json == {"extra_specs": {}}
    with pytest.raises(Exception, match="allow_host_root_guests"):
        flavors.create_flavor(h.db, "root", 1, 64, 1,
                              extra_specs={"pyct:host_root": "true"})
    assert h.admin("POST", base, {"extra_specs": {
        "pyct:host_root": "false"}}).status_int == 200
    # where the operator allowed them: the admin may, members still not
    h = Harness(container__allow_host_root_guests=True)
    assert h.request("POST", base, body).status_int == 403
    assert h.admin("POST", base, body).status_int == 200
    h.add_host()
    spec = _spec(h, h.boot())
    assert spec.host_root is True and spec.privileged is True
    assert spec.id_range is None
