"""The real, unmodified openstack CLI and openstacksdk against pyct.

One deployment for the module: ``pyct-api`` and ``pyct-compute`` on hosts
compute-a and compute-b as separate processes over the real RabbitMQ, on
PostgreSQL. The CLI runs the server lifecycle a user would (create
--wait, list, show, reboot, stop, start, pause, unpause, console log,
event list, delete --wait) and lists flavors and images; the SDK runs the
same flow; another project can neither see nor delete the user's server;
and an image shared with ``image set --shared``, ``image add project`` and
``image set --accept`` is seen and booted only as Glance's visibility model
allows. Between CLI steps the SDK polls (the CLI's own ``--wait`` polls
every 5 seconds and is used only where it is the point).


same flow; and another project can neither see nor delete the user's
server. The CLI imports a key pair from a .pub file and is refused (Nova's
400) for a file holding two keys or an authorized_keys options prefix.
Between CLI steps the SDK polls (the CLI's own ``--wait`` polls every 5
seconds and is used only where it is the point).
"""

from __future__ import annotations

import contextlib
import json

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from openstack import exceptions as sdk_exc

from tests.integration.conftest import (FLAVOR_ID, IMAGE_NAME,
                                        open_pipeline, wait_status)


@pytest.fixture(scope="module")
def dep(tmp_path_factory):
    with contextlib.ExitStack() as stack:
        dep = open_pipeline(stack, str(tmp_path_factory.mktemp("clients")
                                       / "dep"), "postgresql")
        dep.start_all("compute-a", "compute-b")
        yield dep


def cli_json(dep, *args: str, cloud: str = "user"):
    return json.loads(dep.openstack(*args, "-f", "json", cloud=cloud).stdout)


def test_cli_server_lifecycle(dep):
    conn = dep.sdk_connection("user")
    server = cli_json(dep, "server", "create", "--flavor", "m1.tiny",
                      "--image", dep.image_id, "--nic", "none", "--wait",
                      "vm1")
    sid = server["id"]
    assert server["status"] == "ACTIVE"
    assert server["name"] == "vm1"
    # from 2.47 (the CLI negotiates 2.96) the flavor is embedded
    assert server["flavor"]["original_name"] == "m1.tiny"
    assert server["flavor"]["vcpus"] == 1
    assert server["image"] == f"{IMAGE_NAME} ({dep.image_id})"

    listed = cli_json(dep, "server", "list")
    assert [(r["ID"], r["Name"], r["Status"]) for r in listed] == [
        (sid, "vm1", "ACTIVE")]
    shown = cli_json(dep, "server", "show", "vm1")
    assert shown["id"] == sid and shown["status"] == "ACTIVE"
    assert shown["OS-EXT-STS:power_state"] == 1
    assert shown["project_id"] == "demo" and shown["user_id"] == "demo"
    assert shown["OS-EXT-SRV-ATTR:host"] is None  # not for non-admins
    as_admin = cli_json(dep, "server", "show", sid, cloud="admin")
    assert as_admin["OS-EXT-SRV-ATTR:host"] in ("compute-a", "compute-b")

    steps = [(("server", "reboot", "vm1"), "ACTIVE", 1),
             (("server", "stop", "vm1"), "SHUTOFF", 4),
             (("server", "start", "vm1"), "ACTIVE", 1),
             (("server", "pause", "vm1"), "PAUSED", 3),
             (("server", "unpause", "vm1"), "ACTIVE", 1)]
    for args, status, power in steps:
        dep.openstack(*args)
        assert wait_status(conn, sid, status).power_state == power, args

    console = dep.openstack("console", "log", "show", "--lines", "5",
                            "vm1").stdout
    assert console.splitlines() == ["vm1 login:", "soft reboot #2"]

    events = cli_json(dep, "server", "event", "list", "vm1")
    assert [e["Action"] for e in events] == [
        "unpause", "pause", "start", "stop", "reboot", "create"]
    assert {e["Server ID"] for e in events} == {sid}
    assert all(e["Request ID"].startswith("req-") for e in events)
    # an action's events are admin-only at 2.37
    admin = dep.sdk_connection("admin")
    create = admin.compute.get_server_action(events[-1]["Request ID"], sid)
    assert create.action == "create"
    assert [(e["event"], e["result"]) for e in create.events] == [
        ("compute_build_and_run_instance", "Success")]

    dep.openstack("server", "delete", "--wait", "vm1")
    assert list(conn.compute.servers()) == []
    assert all(i["uuid"] != sid for i in dep.live_instances())


def test_cli_flavor_and_image_list(dep):
    flavors = cli_json(dep, "flavor", "list")
    assert flavors == [{"ID": FLAVOR_ID, "Name": "m1.tiny", "RAM": 512,
                        "Disk": 1, "Ephemeral": 0, "VCPUs": 1,
                        "Is Public": True}]
    images = cli_json(dep, "image", "list")
    assert images == [{"ID": dep.image_id, "Name": IMAGE_NAME,
                       "Status": "active"}]


def test_sdk_server_flow(dep):
    conn = dep.sdk_connection("user")
    flavors = list(conn.compute.flavors())
    assert [(f.id, f.name, f.vcpus, f.ram, f.disk) for f in flavors] == [
        (FLAVOR_ID, "m1.tiny", 1, 512, 1)]
    images = list(conn.image.images())
    assert [(i.id, i.name, i.status) for i in images] == [
        (dep.image_id, IMAGE_NAME, "active")]

    server = conn.compute.create_server(
        name="sdk-vm", image_id=dep.image_id, flavor_id=FLAVOR_ID,
        networks="none")
    server = conn.compute.wait_for_server(server, status="ACTIVE",
                                          interval=0.3, wait=30)
    assert server.name == "sdk-vm"
    assert [s.id for s in conn.compute.servers()] == [server.id]
    got = conn.compute.get_server(server.id)
    # from 2.47 a server embeds its flavor as booted (no id)
    assert (got.status, got.power_state, got.flavor.original_name) == (
        "ACTIVE", 1, "m1.tiny")
    assert got.image.id == dep.image_id
    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, interval=0.3, wait=30)
    assert list(conn.compute.servers()) == []


def test_cli_other_project_is_isolated(dep):
    conn = dep.sdk_connection("user")
    server = conn.compute.create_server(
        name="private-vm", image_id=dep.image_id, flavor_id=FLAVOR_ID,
        networks="none")
    try:
        wait_status(conn, server.id, "ACTIVE")
        shown = dep.openstack("server", "show", "private-vm",
                              cloud="other", check=False)
        assert shown.returncode == 1
        assert "No Server found for private-vm" in shown.stderr, shown.stderr
        # by id: the CLI's GET is a 404, then its name lookup finds nothing
        deleted = dep.openstack("server", "delete", server.id,
                                cloud="other", check=False)
        assert deleted.returncode == 1
        assert f"No Server found for {server.id}" in deleted.stderr, \
            deleted.stderr
        # the API itself: not listed, and 404 (not 403) for the other
        # project, for reading and for deleting
        other = dep.sdk_connection("other")
        assert list(other.compute.servers()) == []
        for method in (other.compute.get, other.compute.delete):
            resp = method(f"/servers/{server.id}")
            assert resp.status_code == 404, (method, resp.text)
            assert resp.json()["itemNotFound"]["code"] == 404
        assert wait_status(conn, server.id, "ACTIVE").id == server.id
    finally:
        conn.compute.delete_server(server)
        conn.compute.wait_for_delete(server, interval=0.3, wait=30)


def test_cli_private_flavor_access(dep):
    """An admin's private flavor with pyct:privileged exists only for the
    projects it was given (real CLI, real SDK)."""
    cli_json(dep, "flavor", "create", "--private", "--id", "priv-cli",
             "--vcpus", "1", "--ram", "256", "--disk", "1",
             "--property", "pyct:privileged=true", "privcli", cloud="admin")
    try:
        assert "priv-cli" not in [f["ID"] for f in cli_json(
            dep, "flavor", "list", "--all")]
        shown = dep.openstack("flavor", "show", "priv-cli", check=False)
        assert shown.returncode == 1
        assert "No Flavor found for priv-cli" in shown.stderr, shown.stderr
        made = dep.openstack("server", "create", "--flavor", "priv-cli",
                             "--image", dep.image_id, "--nic", "none",
                             "stolen", check=False)
        assert made.returncode == 1
        user = dep.sdk_connection("user")
        resp = user.compute.post("/servers", json={"server": {
            "name": "stolen", "imageRef": dep.image_id,
            "flavorRef": "priv-cli", "networks": "none"}},
            headers={"OpenStack-API-Version": "compute 2.37"})
        assert resp.status_code == 400, resp.text
        assert resp.json()["badRequest"]["message"] == (
            "Flavor priv-cli could not be found.")
        assert list(user.compute.servers()) == []

        admin = dep.sdk_connection("admin")
        admin.compute.flavor_add_tenant_access("priv-cli", "demo")
        assert "priv-cli" in [f["ID"] for f in cli_json(
            dep, "flavor", "list", "--all")]
        access = cli_json(dep, "flavor", "show", "priv-cli", cloud="admin")
        assert access["access_project_ids"] == ["demo"]
        assert dep.openstack("flavor", "show", "priv-cli", cloud="other",
                             check=False).returncode == 1
        admin.compute.flavor_remove_tenant_access("priv-cli", "demo")
        assert dep.openstack("flavor", "show", "priv-cli",
                             check=False).returncode == 1
    finally:
        dep.openstack("flavor", "delete", "priv-cli", cloud="admin")


def _cli_fails(dep, *args: str, cloud: str) -> str:
    result = dep.openstack(*args, cloud=cloud, check=False)
    assert result.returncode != 0, (args, cloud, result.stdout)
    return result.stderr


def test_cli_image_sharing(dep, tmp_path):
    """Glance's visibility through the real CLI: demo's private image is
    invisible to project "other" (list, show, save, boot); demo shares it
    (``image set --shared``, ``image add project``), "other" sees it by id
    but lists it only after ``image set --accept``, then boots it; once
    removed from the members "other" is refused again."""
    blob = tmp_path / "private.img"
    blob.write_bytes(b"demo's private image\n" * 64)
    image_id = dep.manage("image", "import", "demo-private", str(blob),
                          "--visibility", "private", "--owner", "demo")
    try:
        _share_and_boot(dep, tmp_path, blob, image_id)
    finally:
        # the module's other tests list exactly the seeded image
        engine = dep.engine()
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM image_members WHERE "
                                 "image_id = :i"), {"i": image_id})
            conn.execute(sa.text("DELETE FROM images WHERE id = :i"),
                         {"i": image_id})
        engine.dispose()


def _share_and_boot(dep, tmp_path, blob, image_id: str) -> None:
    def listed(cloud: str, *args: str) -> set[str]:
        return {r["Name"] for r in cli_json(dep, "image", "list", *args,
                                            cloud=cloud)}

    def refused_to_boot(cloud: str) -> None:
        err = _cli_fails(dep, "server", "create", "--flavor", "m1.tiny",
                         "--image", image_id, "--nic", "none", "stolen",
                         cloud=cloud)
        assert f"No Image found for {image_id}" in err, err
        # the compute API itself, not just the CLI's lookup, refuses it
        conn = dep.sdk_connection(cloud)
        with pytest.raises(sdk_exc.BadRequestException,
                           match="Can not find requested image"):
            conn.compute.create_server(name="stolen", image_id=image_id,
                                       flavor_id=FLAVOR_ID, networks="none")
        assert list(conn.compute.servers()) == []

    assert listed("user") == {IMAGE_NAME, "demo-private"}
    assert listed("other") == {IMAGE_NAME}
    err = _cli_fails(dep, "image", "show", image_id, cloud="other")
    assert f"No Image found for {image_id}" in err, err
    _cli_fails(dep, "image", "save", "--file", str(tmp_path / "got"),
               image_id, cloud="other")
    assert not (tmp_path / "got").exists() or \
        b"private image" not in (tmp_path / "got").read_bytes()
    refused_to_boot("other")

    dep.openstack("image", "set", "--shared", image_id)
    assert cli_json(dep, "image", "show", image_id)["visibility"] == "shared"
    added = cli_json(dep, "image", "add", "project", image_id, "other")
    assert (added["member_id"], added["status"]) == ("other", "pending")
    members = cli_json(dep, "image", "member", "list", image_id)
    assert [(m["Member ID"], m["Status"]) for m in members] == [
        ("other", "pending")]
    # pending: shown and bootable by id, not listed by default
    assert cli_json(dep, "image", "show", image_id,
                    cloud="other")["owner"] == "demo"
    assert listed("other") == {IMAGE_NAME}
    assert listed("other", "--member-status", "pending") == {
        IMAGE_NAME, "demo-private"}

    dep.openstack("image", "set", "--accept", "--project", "other",
                  image_id, cloud="other")
    assert listed("other") == {IMAGE_NAME, "demo-private"}
    assert listed("other", "--shared") == {"demo-private"}
    members = cli_json(dep, "image", "member", "list", image_id,
                       cloud="other")
    assert [(m["Member ID"], m["Status"]) for m in members] == [
        ("other", "accepted")]
    # a member may not change the image nor share it further
    # (the SDK's PATCH asks for no type, so Glance's text/plain body
    # gives it only the reason, as with Glance)
    err = _cli_fails(dep, "image", "set", "--name", "mine", image_id,
                     cloud="other")
    assert "ForbiddenException: 403" in err, err
    err = _cli_fails(dep, "image", "add", "project", image_id, "third",
                     cloud="other")
    assert "add_member" in err, err
    saved = tmp_path / "saved"
    dep.openstack("image", "save", "--file", str(saved), image_id,
                  cloud="other")
    assert saved.read_bytes() == blob.read_bytes()
    server = cli_json(dep, "server", "create", "--flavor", "m1.tiny",
                      "--image", image_id, "--nic", "none", "--wait",
                      "shared-vm", cloud="other")
    assert server["status"] == "ACTIVE"
    dep.openstack("server", "delete", "--wait", "shared-vm", cloud="other")

    dep.openstack("image", "remove", "project", image_id, "other")
    assert cli_json(dep, "image", "member", "list", image_id) == []
    assert listed("other") == {IMAGE_NAME}
    refused_to_boot("other")


def _ssh_pub() -> str:
    return ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH,
        serialization.PublicFormat.OpenSSH).decode()


def test_cli_keypair_import_refuses_what_is_not_one_key(dep, tmp_path):
    good = tmp_path / "good.pub"
    good.write_text(_ssh_pub() + " me@laptop\n")      # as ssh-keygen writes
    made = cli_json(dep, "keypair", "create", "--public-key", str(good),
                    "k-good")
    assert made["name"] == "k-good" and len(made["fingerprint"]) == 47
    refused = {
        "two.pub": (_ssh_pub() + "\n" + _ssh_pub() + "\n",
                    "Keypair data is invalid: a public key must be one line "
                    "holding one key"),
        "forced.pub": ('command="/bin/sh -c id" ' + _ssh_pub() + "\n",
                       "Keypair data is invalid: failed to generate "
                       "fingerprint")}
    try:
        for name, (text, message) in refused.items():
            path = tmp_path / name
            path.write_text(text)
            result = dep.openstack("keypair", "create", "--public-key",
                                   str(path), "k-" + name[:-4], check=False)
            assert result.returncode == 1, result.stdout
            assert result.stderr.startswith("BadRequestException: 400"), \
                result.stderr
            assert result.stderr.rstrip().endswith(message), result.stderr
        assert [k["Name"] for k in cli_json(dep, "keypair", "list")] == [
            "k-good"]
    finally:
        dep.openstack("keypair", "delete", "k-good")
