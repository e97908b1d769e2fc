"""pyct behind a real Keystone: passwords, the catalog, tokens, isolation.

One deployment for the module: ``pyct-api`` (``auth_strategy =
keystone``, ``[keystone_authtoken]`` of the service user ``pyct``) and a
``pyct-compute`` over the real RabbitMQ, on PostgreSQL, registered in the
real Keystone of the ``keystone`` fixture by ``pyct-manage endpoint
register``. The real openstack CLI and openstacksdk log in with
passwords and find pyct through the catalog (no endpoint overrides).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import uuid

import pytest
import requests
import yaml
from openstack import exceptions as sdk_exc

from tests.integration.conftest import FLAVOR_ID, open_pipeline, wait_status
from tests.services import BIN


class KeystoneCloud:
    """The deployment, its Keystone, and the clients of Keystone's users."""

    def __init__(self, dep, keystone, workdir: str) -> None:
        self.dep = dep
        self.keystone = keystone
        self.clouds_yaml = os.path.join(workdir, "clouds.yaml")
        with open(self.clouds_yaml, "w") as f:
            yaml.safe_dump({"clouds": keystone.clouds()}, f)

    def register(self, *args: str, user: str = "admin"
                 ) -> subprocess.CompletedProcess:
        """``pyct-manage endpoint register`` as an operator with an
        openrc (the admin's, unless ``user``) runs it."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("OS_")}
        env.update(self.keystone.admin_env(self.keystone.users[user]))
        return subprocess.run(
            [os.path.join(BIN, "python"), "-m", "pyct_driver.cmd.manage",
             "--config-file", self.dep.conf, "endpoint", "register",
             "--public-url", self.dep.endpoint, *args],
            capture_output=True, text=True, env=env, timeout=120,
            cwd=os.path.dirname(os.path.dirname(os.path.dirname(
                os.path.abspath(__file__)))))

    def cli(self, *args: str, user: str = "member-a", check: bool = True
            ) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("OS_")}
        env["OS_CLIENT_CONFIG_FILE"] = self.clouds_yaml
        run = subprocess.run([os.path.join(BIN, "openstack"), "--os-cloud",
                              user, *args], capture_output=True, text=True,
                             env=env, timeout=180)
        if check and run.returncode != 0:
            raise AssertionError(f"openstack {' '.join(args)} as {user}: "
                                 f"{run.stdout}\n{run.stderr}")
        return run

    def cli_json(self, *args: str, user: str = "member-a"):
        return json.loads(self.cli(*args, "-f", "json", user=user).stdout)

    def sdk(self, user: str):
        return self.keystone.connect(self.keystone.users[user])


@pytest.fixture(scope="module")
def cloud(tmp_path_factory, keystone):
    workdir = tmp_path_factory.mktemp("keystone-api")
    with contextlib.ExitStack() as stack:
        dep = open_pipeline(stack, str(workdir / "dep"), "postgresql", {
            "api": {"auth_strategy": "keystone"},
            "keystone_authtoken": keystone.authtoken_section()})
        dep.start_all("compute-a")
        cloud = KeystoneCloud(dep, keystone, str(workdir))
        reg = cloud.register()
        assert reg.returncode == 0, reg.stdout + reg.stderr
        yield cloud


def _catalog_urls(conn) -> dict[tuple[str, str], str]:
    out = {}
    for entry in conn.session.auth.get_access(conn.session).service_catalog\
            .catalog:
        for ep in entry["endpoints"]:
            out[(entry["type"], ep["interface"])] = ep["url"]
    return out


def test_endpoint_register_put_pyct_in_the_catalog_once(cloud):
    admin = cloud.sdk("admin")
    before = (sorted(s.id for s in admin.identity.services()),
              sorted(e.id for e in admin.identity.endpoints()))
    urls = _catalog_urls(cloud.sdk("member-a"))
    base = cloud.dep.endpoint
    for iface in ("public", "internal", "admin"):
        assert urls[("compute", iface)] == f"{base}/v2.1"
        assert urls[("image", iface)] == f"{base}/image"
        assert urls[("network", iface)] == f"{base}/networking"
    names = {s.type: s.name for s in admin.identity.services()}
    assert names["compute"] == "pyct"
    # a second run creates nothing
    again = cloud.register()
    assert again.returncode == 0, again.stderr
    assert "created" not in again.stdout, again.stdout
    assert "catalog up to date" in again.stdout
    after = (sorted(s.id for s in admin.identity.services()),
             sorted(e.id for e in admin.identity.endpoints()))
    assert after == before


def test_endpoint_register_as_a_member_is_refused_and_changes_nothing(
        cloud):
    admin = cloud.sdk("admin")
    before = sorted((e.id, e.url) for e in admin.identity.endpoints())
    run = cloud.register("--public-url", "http://elsewhere:8774",
                         user="member-a")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "ERROR: " in run.stderr and "Keystone:" in run.stderr
    assert "Traceback" not in run.stderr
    assert sorted((e.id, e.url) for e in admin.identity.endpoints()) == \
        before


def test_cli_password_login_flavors_keypairs_servers(cloud, tmp_path):
    flavors = cloud.cli_json("flavor", "list")
    assert [(f["ID"], f["Name"]) for f in flavors] == [(FLAVOR_ID,
                                                        "m1.tiny")]
    key = cloud.cli_json("keypair", "create", "--private-key",
                         str(tmp_path / "key-a"), "key-a")
    assert key["name"] == "key-a"
    assert (tmp_path / "key-a").read_text().startswith("-----BEGIN")
    assert [k["Name"] for k in cloud.cli_json("keypair", "list")] == [
        "key-a"]
    # key pairs are the user's own
    assert cloud.cli_json("keypair", "list", user="member-b") == []
    server = cloud.cli_json("server", "create", "--flavor", "m1.tiny",
                            "--image", cloud.dep.image_id, "--nic", "none",
                            "--key-name", "key-a", "--wait", "vm-a")
    assert server["status"] == "ACTIVE"
    users = cloud.keystone.users
    shown = cloud.cli_json("server", "show", "vm-a")
    # the context came from Keystone's headers: its ids, not names
    assert shown["project_id"] == users["member-a"].project_id
    assert shown["user_id"] == users["member-a"].id
    assert shown["key_name"] == "key-a"
    listed = cloud.cli_json("server", "list")
    assert [(s["Name"], s["Status"]) for s in listed] == [("vm-a",
                                                           "ACTIVE")]
    cloud.cli("server", "delete", "--wait", "vm-a")
    assert cloud.cli_json("server", "list") == []
    cloud.cli("keypair", "delete", "key-a")
    assert cloud.cli_json("keypair", "list") == []


def test_projects_are_isolated_readers_read_admin_sees_all(cloud):
    member_b = cloud.sdk("member-b")
    assert [(f.id, f.name) for f in member_b.compute.flavors()] == [
        (FLAVOR_ID, "m1.tiny")]
    server = member_b.compute.create_server(
        name="vm-b", image_id=cloud.dep.image_id, flavor_id=FLAVOR_ID,
        networks="none")
    try:
        wait_status(member_b, server.id, "ACTIVE")
        member_a = cloud.sdk("member-a")
        assert list(member_a.compute.servers()) == []
        for method in (member_a.compute.get, member_a.compute.delete):
            resp = method(f"/servers/{server.id}")
            assert resp.status_code == 404, resp.text
            assert resp.json()["itemNotFound"]["code"] == 404
        shown = cloud.cli("server", "show", server.id, user="member-a",
                          check=False)
        assert shown.returncode == 1 and "No Server found" in shown.stderr
        # B's reader reads B's server
        reader_b = cloud.sdk("reader-b")
        assert [s.id for s in reader_b.compute.servers()] == [server.id]
        assert reader_b.compute.get_server(server.id).status == "ACTIVE"
        assert cloud.cli_json("server", "show", server.id,
                              user="reader-b")["name"] == "vm-b"
        # Keystone's admin role reaches policy: all projects for admin
        admin = cloud.sdk("admin")
        every = {s.id: s.project_id
                 for s in admin.compute.servers(all_projects=True)}
        assert every == {server.id: cloud.keystone.users["member-b"]
                         .project_id}
        listed = cloud.cli_json("server", "list", "--all-projects",
                                user="admin")
        assert [s["ID"] for s in listed] == [server.id]
        resp = member_a.compute.get("/servers/detail?all_tenants=1")
        assert resp.status_code == 403, resp.text
    finally:
        member_b.compute.delete_server(server)
        member_b.compute.wait_for_delete(server, interval=0.3, wait=30)


def _get_servers(cloud, token: str | None) -> requests.Response:
    headers = {"X-Auth-Token": token} if token is not None else {}
    return requests.get(f"{cloud.dep.endpoint}/v2.1/servers",
                        headers=headers, timeout=30)


def test_bad_missing_and_expired_tokens_are_401(cloud):
    keystone = cloud.keystone
    expected = f'Keystone uri="{keystone.url}"'
    expired = keystone.expired_token(keystone.users["member-a"])
    revoked = keystone.token(keystone.users["member-a"])
    keystone.connect(keystone.admin).identity.delete(
        "/auth/tokens", headers={"X-Subject-Token": revoked})
    for token in (None, "not-a-token", "gAAAAA" + "x" * 180, expired,
                  revoked):
        resp = _get_servers(cloud, token)
        assert resp.status_code == 401, (token, resp.text)
        assert resp.headers["WWW-Authenticate"] == expected
        assert resp.headers["x-openstack-request-id"].startswith("req-")
    # a caller's request id becomes the context's global_request_id,
    # which every log line of the request names first
    caller_id = f"req-{uuid.uuid4()}"
    good = requests.get(f"{cloud.dep.endpoint}/v2.1/servers", headers={
        "X-Auth-Token": keystone.token(keystone.users["member-a"]),
        "X-OpenStack-Request-ID": caller_id}, timeout=30)
    assert good.status_code == 200, good.text
    own_id = good.headers["x-openstack-request-id"]
    assert own_id != caller_id
    api_log = [p for p in cloud.dep.processes if p.script == "pyct-api"][0]
    api_log.wait_output(f"[{caller_id} {own_id} "
                        f"{keystone.users['member-a'].id} "
                        f"{keystone.users['member-a'].project_id}")
    # the version documents stay public
    for path in ("/", "/v2.1/"):
        resp = requests.get(cloud.dep.endpoint + path, timeout=30)
        assert resp.status_code == 200, (path, resp.text)


def test_sdk_member_cannot_delete_others_and_sdk_errors_are_404(cloud):
    member_a = cloud.sdk("member-a")
    with pytest.raises(sdk_exc.NotFoundException):
        member_a.compute.get_server("00000000-0000-0000-0000-000000000000")
    keypair = member_a.compute.create_keypair(name="sdk-key")
    try:
        assert [k.name for k in member_a.compute.keypairs()] == ["sdk-key"]
        assert list(cloud.sdk("member-b").compute.keypairs()) == []
    finally:
        member_a.compute.delete_keypair(keypair)
    assert list(member_a.compute.keypairs()) == []
