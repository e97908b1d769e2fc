"""``pyct-manage endpoint register``'s decisions, on an in-memory catalog
(the real Keystone run is tests/integration/test_keystone_api.py): what
``auto``, ``register`` and ``skip`` do beside a cloud's own Glance and
Neutron, that a second run changes nothing and that a moved API's
endpoints are updated in place."""

from __future__ import annotations

import itertools
import types

from pyct_driver.cmd import endpoint_register

BASE = {"public": "http://ctl:8774", "internal": "http://10.0.0.1:8774",
        "admin": "http://10.0.0.1:8774"}


class FakeIdentity:
    """The few calls of openstacksdk's identity proxy the command uses."""

    def __init__(self) -> None:
        self.ids = itertools.count(1)
        self.regions: set[str] = {"RegionOne"}
        self.endpoints_: list = []

    def find_region(self, name):
        return name if name in self.regions else None

    def create_region(self, id):  # noqa: A002 - the SDK's name
        self.regions.add(id)

    def services(self, type):  # noqa: A002
        return [s for s in self._services if s.type == type]

    def create_service(self, **attrs):
        svc = types.SimpleNamespace(id=f"s{next(self.ids)}", **attrs)
        self._services.append(svc)
        return svc

    def endpoints(self, service_id, interface):
        return [e for e in self.endpoints_ if e.service_id == service_id
                and e.interface == interface]

    def create_endpoint(self, **attrs):
        self.endpoints_.append(types.SimpleNamespace(
            id=f"e{next(self.ids)}", **attrs))

    def update_endpoint(self, endpoint, url):
        endpoint.url = url

    @property
    def _services(self):
        return self.__dict__.setdefault("_svc", [])


def _urls(identity, kind):
    ids = {s.id for s in identity.services(kind)}
    return {e.interface: e.url for e in identity.endpoints_
            if e.service_id in ids}


def _run(identity, **modes):
    lines: list[str] = []
    endpoint_register.register(identity, BASE, "RegionOne", {}, modes,
                               lines.append)
    return lines


def test_fresh_cloud_gets_all_three_services_once():
    ident = FakeIdentity()
    lines = _run(ident)
    assert {(s.type, s.name) for s in ident._services} == {
        ("compute", "pyct"), ("image", "pyct-image"),
        ("network", "pyct-network")}
    assert _urls(ident, "compute") == {
        "public": "http://ctl:8774/v2.1",
        "internal": "http://10.0.0.1:8774/v2.1",
        "admin": "http://10.0.0.1:8774/v2.1"}
    assert _urls(ident, "image")["public"] == "http://ctl:8774/image"
    assert _urls(ident, "network")["public"] == "http://ctl:8774/networking"
    assert len(ident.endpoints_) == 9 and len(lines) == 12
    before = [(e.id, e.url) for e in ident.endpoints_]
    assert _run(ident) == []
    assert [(e.id, e.url) for e in ident.endpoints_] == before


def test_auto_leaves_the_clouds_glance_and_neutron_alone():
    ident = FakeIdentity()
    glance = ident.create_service(type="image", name="glance")
    ident.create_service(type="network", name="neutron")
    lines = _run(ident, image="auto", network="auto")
    assert "image: the cloud's glance stays; pyct's /image is not " \
           "registered" in lines
    assert [s.name for s in ident.services("image")] == ["glance"]
    assert [s.name for s in ident.services("network")] == ["neutron"]
    assert all(e.service_id != glance.id for e in ident.endpoints_)
    assert len(ident.endpoints_) == 3   # compute only


def test_register_adds_pyct_beside_glance_and_skip_never_registers():
    ident = FakeIdentity()
    ident.create_service(type="image", name="glance")
    lines = _run(ident, image="register", network="skip")
    assert sorted(s.name for s in ident.services("image")) == [
        "glance", "pyct-image"]
    assert ident.services("network") == []
    assert "network: skipped" in lines


def test_a_moved_api_updates_the_endpoints_in_place():
    ident = FakeIdentity()
    _run(ident)
    ids = sorted(e.id for e in ident.endpoints_)
    lines: list[str] = []
    endpoint_register.register(
        ident, dict(BASE, public="https://api.example:8774"), "RegionOne",
        {}, {}, lines.append)
    assert sorted(e.id for e in ident.endpoints_) == ids
    assert _urls(ident, "compute")["public"] == \
        "https://api.example:8774/v2.1"
    assert sum("updated public endpoint" in line for line in lines) == 3


def test_a_missing_region_is_created():
    ident = FakeIdentity()
    lines: list[str] = []
    endpoint_register.register(ident, BASE, "RegionTwo", {}, {},
                               lines.append)
    assert "RegionTwo" in ident.regions and lines[0] == \
        "created region RegionTwo"
    assert {e.region_id for e in ident.endpoints_} == {"RegionTwo"}
