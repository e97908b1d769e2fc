"""Bad input, one case at a time: right code, right fault, nothing left.

Each case runs against a fresh app with one existing server; after the
request the instance and instance-action tables must be exactly as before.
"""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from pyct_driver import states
from pyct_driver.db import models
from tests.unit.test_api_app import Harness

NET = "6e9b6c5e-2d0a-4c4b-9f59-0a6e6e3b9a11"


def _server(h, **fields):
    body = {"name": "vm", "imageRef": h.image["id"], "flavorRef": "1",
            "networks": "none"}
    body.update(fields)
    return {"server": {k: v for k, v in body.items() if v is not _DROP}}


_DROP = object()

# (id, method, path, body-or-callable, kwargs, code, fault, message)
CASES = [
    ("unknown-field", "POST", "/v2.1/servers",
     lambda h: _server(h, foo=1), {}, 400, "badRequest",
     "Additional properties are not allowed ('foo' was unexpected)"),
    ("unknown-top-level", "POST", "/v2.1/servers",
     lambda h: {**_server(h), "extra": 1}, {}, 400, "badRequest",
     "Additional properties are not allowed ('extra' was unexpected)"),
    ("name-wrong-type", "POST", "/v2.1/servers",
     lambda h: _server(h, name=5), {}, 400, "badRequest",
     "Invalid input for field/attribute name. Value: 5. 5 is not of type "
     "'string'"),
    ("name-too-long", "POST", "/v2.1/servers",
     lambda h: _server(h, name="x" * 256), {}, 400, "badRequest",
     "is too long"),
    ("name-empty", "POST", "/v2.1/servers",
     lambda h: _server(h, name=""), {}, 400, "badRequest",
     "Invalid input for field/attribute name. Value: . '' should be "
     "non-empty"),
    ("name-only-spaces", "POST", "/v2.1/servers",
     lambda h: _server(h, name="   "), {}, 400, "badRequest",
     "Invalid input for field/attribute name."),
    ("microversion-2.0", "GET", "/v2.1/servers", None,
     {"version": "2.0"}, 406, "computeFault",
     "Version 2.0 is not supported by the API. Minimum is 2.1 and maximum "
     "is 2.96."),
    ("microversion-2.999", "GET", "/v2.1/servers", None,
     {"version": "2.999"}, 406, "computeFault",
     "Version 2.999 is not supported by the API."),
    ("microversion-garbage", "POST", "/v2.1/servers",
     lambda h: _server(h), {"version": "two"}, 400, "badRequest",
     "API Version String two is of invalid format. Must be of format "
     "MajorNum.MinorNum."),
    ("networks-required-237", "POST", "/v2.1/servers",
     lambda h: _server(h, networks=_DROP), {}, 400, "badRequest",
     "'networks' is a required property"),
    ("unknown-flavor", "POST", "/v2.1/servers",
     lambda h: _server(h, flavorRef="42"), {}, 400, "badRequest",
     "Flavor 42 could not be found."),
    ("unknown-image", "POST", "/v2.1/servers",
     lambda h: _server(h, imageRef="1b2c3d4e-1111-4222-8333-444455556666"),
     {}, 400, "badRequest", "Can not find requested image"),
    ("image-not-uuid", "POST", "/v2.1/servers",
     lambda h: _server(h, imageRef="cirros"), {}, 400, "badRequest",
     "Invalid input for field/attribute imageRef. Value: cirros. 'cirros' "
     "is not a 'uuid'"),
    ("bad-server-uuid", "GET", "/v2.1/servers/not-a-uuid", None, {}, 404,
     "itemNotFound", "Instance not-a-uuid could not be found."),
    ("other-projects-server", "POST", "/v2.1/servers/{sid}/action",
     {"os-stop": None}, {"token": "bob:p2"}, 404, "itemNotFound",
     "Instance {sid} could not be found."),
    ("malformed-json", "POST", "/v2.1/servers", b'{"server": ',
     {}, 400, "badRequest", "Malformed request body"),
    ("oversized-body", "POST", "/v2.1/servers",
     lambda h: _server(h, user_data="A" * 120000), {}, 413, "overLimit",
     "Request is too large."),
    ("reboot-while-rebooting", "POST", "/v2.1/servers/{sid}/action",
     {"reboot": {"type": "SOFT"}}, {"task": states.REBOOTING}, 409,
     "conflictingRequest",
     "Cannot 'reboot' instance {sid} while it is in task_state rebooting"),
    ("stop-stopped", "POST", "/v2.1/servers/{sid}/action",
     {"os-stop": None}, {"vm": states.STOPPED}, 409, "conflictingRequest",
     "Cannot 'stop' instance {sid} while it is in vm_state stopped"),
    ("start-active", "POST", "/v2.1/servers/{sid}/action",
     {"os-start": None}, {}, 409, "conflictingRequest",
     "Cannot 'start' instance {sid} while it is in vm_state active"),
    ("bad-reboot-type", "POST", "/v2.1/servers/{sid}/action",
     {"reboot": {"type": "MEDIUM"}}, {}, 400, "badRequest",
     "Invalid input for field/attribute type. Value: MEDIUM."),
    ("unknown-action", "POST", "/v2.1/servers/{sid}/action",
     {"os-levitate": None}, {}, 400, "badRequest",
     "There is no such action: os-levitate"),
    ("bad-marker", "GET", "/v2.1/servers?marker=nope", None, {}, 400,
     "badRequest", "marker [nope] not found"),
    ("bad-limit", "GET", "/v2.1/servers?limit=-1", None, {}, 400,
     "badRequest", "limit param must be non-negative"),
    ("min-over-max", "POST", "/v2.1/servers",
     lambda h: _server(h, min_count=3, max_count=2), {}, 400, "badRequest",
     "min_count must be <= max_count"),
    ("max-over-limit", "POST", "/v2.1/servers",
     lambda h: _server(h, max_count=101), {}, 400, "badRequest",
     "max_count must be <= 100"),
    ("count-zero", "POST", "/v2.1/servers",
     lambda h: _server(h, min_count=0), {}, 400, "badRequest",
     "min_count"),
    ("non-admin-flavor-create", "POST", "/v2.1/flavors",
     {"flavor": {"name": "f", "ram": 1, "vcpus": 1, "disk": 1}}, {}, 403,
     "forbidden", "Policy doesn't allow os_compute_api:os-flavor-manage:"
     "create to be performed."),
    ("flavor-create-bad-ram", "POST", "/v2.1/flavors",
     {"flavor": {"name": "f", "ram": "lots", "vcpus": 1, "disk": 1}},
     {"token": "admin:adminproj"}, 400, "badRequest",
     "Invalid input for field/attribute ram."),
    ("invalid-extra-spec", "POST", "/v2.1/flavors/1/os-extra_specs",
     {"extra_specs": {"quota:cpu_quota": "10"}},
     {"token": "admin:adminproj"}, 400, "badRequest", "quota:cpu_quota"),
    ("unknown-strict-extra-spec", "POST", "/v2.1/flavors/1/os-extra_specs",
     {"extra_specs": {"pyct:warp_drive": "1"}},
     {"token": "admin:adminproj"}, 400, "badRequest", "pyct:warp_drive"),
    ("bad-user-data", "POST", "/v2.1/servers",
     lambda h: _server(h, user_data="not base64!"), {}, 400, "badRequest",
     "Invalid input for field/attribute user_data. Value: not base64!. "
     "'not base64!' is not a 'base64'"),
    ("bad-networks-string", "POST", "/v2.1/servers",
     lambda h: _server(h, networks="everything"), {}, 400, "badRequest",
     "'everything' is not one of ['none', 'auto']"),
    ("bad-networks-uuid", "POST", "/v2.1/servers",
     lambda h: _server(h, networks=[{"uuid": "net1"}]), {}, 400,
     "badRequest", "'net1' is not a 'uuid'"),
    ("networks-without-uuid-or-port", "POST", "/v2.1/servers",
     lambda h: _server(h, networks=[{"fixed_ip": "10.0.0.5"}]), {}, 400,
     "badRequest", "Bad networks format"),
    ("bdm-volume", "POST", "/v2.1/servers",
     lambda h: _server(h, block_device_mapping_v2=[{
         "source_type": "volume", "destination_type": "volume",
         "boot_index": 0, "uuid": NET}]), {}, 400, "badRequest",
     "Block Device Mapping is Invalid"),
    ("bdm-unknown-field", "POST", "/v2.1/servers",
     lambda h: _server(h, block_device_mapping_v2=[{
         "source_type": "image", "boot_index": 0, "uuid": h.image["id"],
         "warp": 1}]), {}, 400, "badRequest",
     "Additional properties are not allowed ('warp' was unexpected)"),
    ("bdm-other-image", "POST", "/v2.1/servers",
     lambda h: _server(h, block_device_mapping_v2=[{
         "source_type": "image", "destination_type": "local",
         "boot_index": 0, "uuid": NET}]), {}, 400, "badRequest",
     "the root disk's uuid must be the imageRef"),
    ("metadata-too-many", "POST", "/v2.1/servers",
     lambda h: _server(h, metadata={f"k{i}": "v" for i in range(129)}),
     {}, 403, "forbidden", "Maximum number of metadata items exceeds 128"),
    ("metadata-value-too-long", "POST", "/v2.1/servers",
     lambda h: _server(h, metadata={"k": "v" * 256}), {}, 400,
     "badRequest", "is too long"),
    ("wrong-method", "PATCH", "/v2.1/servers/{sid}", {}, {}, 405,
     "badMethod", "The method specified is not allowed for this resource."),
    ("unknown-url", "GET", "/v2.1/servers/{sid}/nonsense", None, {}, 404,
     "itemNotFound", "The resource could not be found."),
    ("no-token", "POST", "/v2.1/servers", lambda h: _server(h),
     {"token": None}, 401, "unauthorized", "Authentication required."),
    ("description-before-219", "POST", "/v2.1/servers",
     lambda h: _server(h, networks=_DROP, description="d"),
     {"version": "2.18"}, 400, "badRequest",
     "Additional properties are not allowed ('description' was "
     "unexpected)"),
    ("all-tenants-non-admin", "GET", "/v2.1/servers?all_tenants=1", None,
     {}, 403, "forbidden", "get_all_tenants"),
    # the name filter is a regex run by RE2: what it cannot run is refused
    # with the words of Nova's query schema
    ("name-filter-invalid", "GET", "/v2.1/servers?name=" + quote("web("),
     None, {}, 400, "badRequest", "Invalid input for query parameters "
     "name. Value: web(. 'web(' is not a 'regex'"),
    ("name-filter-backreference", "GET",
     "/v2.1/servers?name=" + quote(r"(a)\1"), None, {}, 400, "badRequest",
     r"Invalid input for query parameters name. Value: (a)\1. '(a)\\1' is "
     "not a 'regex'"),
    ("name-filter-lookahead", "GET", "/v2.1/servers?name=" + quote("(?=a)"),
     None, {}, 400, "badRequest", "'(?=a)' is not a 'regex'"),
    ("name-filter-empty", "GET", "/v2.1/servers/detail?name=", None, {},
     400, "badRequest", "Invalid input for query parameters name. Value: . "
     "'' is not a 'regex'"),
    ("name-filter-too-long", "GET", "/v2.1/servers?name=" + "a" * 1025,
     None, {}, 400, "badRequest", "'" + "a" * 1025 + "' is too long"),
    ("name-filter-too-complex", "GET",
     "/v2.1/servers?name=" + quote("(?:[ab]?){1000}"), None, {}, 400,
     "badRequest", "'(?:[ab]?){{1000}}' is too complex"),
    ("query-not-utf8", "GET", "/v2.1/servers?name=%ff", None, {}, 400,
     "badRequest", "Query string is not UTF-8 encoded"),
    # deeper than any Nova body (pyct's limit is 32 levels)
    ("json-too-deep", "POST", "/v2.1/servers",
     b'{"server": ' + b"[" * 50000 + b"]" * 50000 + b"}", {}, 400,
     "badRequest", "Malformed request body"),
]


def _counts(h) -> tuple[int, int, int]:
    with h.db.session() as session:
        return tuple(session.scalar(sa.select(sa.func.count()).select_from(
            table)) for table in (models.Instance, models.InstanceAction,
                                  models.InstanceFault))


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case):
    _name, method, path, body, kw, code, fault, message = case
    h = Harness()
    h.add_host("node1")
    sid = h.boot("existing")["id"]
    with h.db.session() as session:
        row = session.scalars(sa.select(models.Instance)).one()
        row.vm_state = kw.get("vm", states.ACTIVE)
        row.task_state = kw.get("task")
    calls_before = list(h.compute.calls)
    before = _counts(h)
    if callable(body):
        body = body(h)
    kwargs = {"version": kw.get("version", "2.37"),
              "token": kw.get("token", "alice:p1")}
    if isinstance(body, bytes):
        kwargs["raw"] = body
        body = None
    resp = h.request(method, path.format(sid=sid), body, **kwargs)
    assert resp.status_int == code, resp.text
    payload = json.loads(resp.text)
    assert list(payload) == [fault]
    assert payload[fault]["code"] == code
    assert message.format(sid=sid) in payload[fault]["message"]
    assert resp.headers["x-openstack-request-id"].startswith("req-")
    assert _counts(h) == before
    assert h.compute.calls == calls_before


def test_there_are_at_least_twenty_cases():
    assert len({c[0] for c in CASES}) >= 20


def test_user_data_decoded_size_limit():
    h = Harness(api__max_request_body_size=200000)
    h.add_host()
    blob = base64.b64encode(b"x" * 50000).decode()
    assert h.request("POST", "/v2.1/servers", _server(h, user_data=blob),
                     version="2.37").status_int == 202
    big = base64.b64encode(b"x" * 70000).decode()
    resp = h.request("POST", "/v2.1/servers", _server(h, user_data=big),
                     version="2.37")
    assert resp.status_int == 400
    assert resp.json["badRequest"]["message"].startswith("User data too large")
    with h.db.session() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(
            models.Instance)) == 1
