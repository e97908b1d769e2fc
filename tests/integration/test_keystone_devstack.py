"""The devstack plugin's configuration, run against the real Keystone.

The ``stack post-config`` phase of devstack/plugin.sh runs with devstack's
Keystone helpers doing what devstack's do through the real openstack CLI
(tests/fixtures/devstack_standins.sh, ``STANDIN_KEYSTONE=real``) against
the Keystone of the ``keystone`` fixture, a real PostgreSQL database and a
RabbitMQ virtual host; its ``pyct-manage db sync`` is the real one. Then
``pyct-api`` starts from exactly the pyct.conf the phase wrote, and a
Keystone token of a project member is accepted while a missing one gets
Keystone's 401.
"""

from __future__ import annotations

import os

import requests
import yaml

from tests import dbfixtures
from tests.integration.conftest import rabbit_transport
from tests.services import BIN, ServiceProcess, free_port, wait_http
from tests.unit.test_devstack_plugin import Devstack


def test_plugin_config_serves_keystone_tokens(tmp_path, keystone):
    clouds = tmp_path / "clouds.yaml"
    admin = keystone.clouds()["admin"]
    clouds.write_text(yaml.safe_dump(
        {"clouds": {"devstack-system-admin": admin}}))
    port = free_port()
    with dbfixtures.make_postgres_url() as db_url, \
            rabbit_transport() as (bus_url, _extra):
        ds = Devstack(
            str(tmp_path / "devstack"),
            "keystone,postgresql,rabbit,pyct-api,pyct-compute",
            real_manage=True, STANDIN_KEYSTONE="real",
            PATH=f"{BIN}:{os.environ['PATH']}",
            OS_CLIENT_CONFIG_FILE=str(clouds),
            KEYSTONE_SERVICE_URI=keystone.url,
            SERVICE_PASSWORD=keystone.users["pyct"].password,
            STANDIN_DATABASE_URL=db_url, STANDIN_TRANSPORT_URL=bus_url,
            PYCT_API_PORT=str(port), PYCT_VIRT_DRIVER="fake")
        calls = ds.run_phase("stack", "post-config")
        assert ["create_service_user", "pyct"] in calls
        conf = ds.ini()
        assert conf.get("api", "auth_strategy") == "keystone"
        assert conf.get("database", "connection") == db_url
        # what the phase did in Keystone is there
        ident = keystone.connect(keystone.admin).identity
        compute = [s for s in ident.services() if s.type == "compute"]
        assert len(compute) == 1
        urls = {e.interface for e in ident.endpoints(
            service_id=compute[0].id)}
        assert urls == {"public", "internal", "admin"}
        roles = {r.name for r in ident.roles()}
        assert {"reader", "member", "service"} <= roles

        api = ServiceProcess("pyct-api", ds.conf,
                             str(tmp_path / "pyct-api.log"))
        try:
            endpoint = f"http://127.0.0.1:{port}"
            try:
                wait_http(endpoint + "/")
            except OSError:
                raise AssertionError(api.output()[-4000:])
            token = keystone.token(keystone.users["member-a"])
            resp = requests.get(f"{endpoint}/v2.1/servers",
                                headers={"X-Auth-Token": token}, timeout=30)
            assert resp.status_code == 200, resp.text
            assert resp.json() == {"servers": []}
            resp = requests.get(f"{endpoint}/v2.1/flavors", timeout=30)
            assert resp.status_code == 401
            assert resp.headers["WWW-Authenticate"] == \
                f'Keystone uri="{keystone.url}"'
        finally:
            api.stop()
