"""Locks, server properties, root passwords, diagnostics and server
groups through the real openstack CLI.

``pyct-api`` and two ``pyct-compute`` processes (fake driver) on
PostgreSQL over the real RabbitMQ. The project locks a server with a
reason (2.73): its own ``server stop`` and ``server delete`` then fail
with the 409 until ``server unlock``; ``server set --property`` and
``unset --property`` change the metadata; ``server set --root-password``
reaches the compute host's driver; an anti-affinity group places two
servers on the two hosts and refuses a third (ERROR, NoValidHost), an
affinity group keeps its servers together; ``server group show`` lists
the members; a hint naming no group is refused.
"""

from __future__ import annotations

import json
import uuid

from tests.integration.conftest import FLAVOR_ID, wait_until

HOSTS = ("compute-a", "compute-b")


def _cli(dep, *args, cloud="user"):
    return json.loads(dep.openstack(*args, "-f", "json", cloud=cloud).stdout)


def _boot(dep, name, *extra, wait=True):
    return _cli(dep, "--os-compute-api-version", "2.73", "server", "create",
                "--flavor", FLAVOR_ID, "--image", dep.image_id, "--nic",
                "none", *extra, *(["--wait"] if wait else []), name)


def _host(dep, name):
    return _cli(dep, "server", "show", name, cloud="admin")[
        "OS-EXT-SRV-ATTR:host"]


def test_lock_properties_password_and_groups(pipeline_factory):
    dep = pipeline_factory("postgresql")
    dep.start_all(*HOSTS)
    v273 = ("--os-compute-api-version", "2.73")

    _boot(dep, "vm1")
    dep.openstack(*v273, "server", "lock", "--reason", "maintenance", "vm1")
    shown = _cli(dep, *v273, "server", "show", "vm1")
    assert shown["locked"] is True and shown["locked_reason"] == \
        "maintenance"
    for args in (("server", "stop", "vm1"), ("server", "delete", "vm1")):
        result = dep.openstack(*args, check=False)
        assert result.returncode != 0
        assert "is locked" in result.stderr and "409" in result.stderr
    assert _cli(dep, "server", "show", "vm1")["status"] == "ACTIVE"
    dep.openstack("server", "unlock", "vm1")
    assert _cli(dep, *v273, "server", "show", "vm1")["locked"] is False

    dep.openstack("server", "set", "--property", "owner=me", "--property",
                  "tier=web", "vm1")
    assert _cli(dep, "server", "show", "vm1")["properties"] == {
        "owner": "me", "tier": "web"}
    dep.openstack("server", "unset", "--property", "tier", "vm1")
    assert _cli(dep, "server", "show", "vm1")["properties"] == {
        "owner": "me"}
    result = dep.openstack("server", "set", "--property",
                           "k" * 256 + "=v", "vm1", check=False)
    assert result.returncode != 0 and "400" in result.stderr

    dep.openstack("server", "set", "--password", "s3cret", "vm1")
    events = _cli(dep, "server", "event", "list", "vm1")
    assert "changePassword" in {e["Action"] for e in events}
    assert _cli(dep, "server", "show", "vm1")["status"] == "ACTIVE"
    # diagnostics (admins, 2.48's form) from the fake driver's numbers
    conn = dep.sdk_connection("admin")
    try:
        server = conn.compute.find_server("vm1", all_projects=True)
        diag = conn.compute.get_server_diagnostics(server)
        assert diag.cpu_details[0]["time"] == 1_000_000_000
        assert diag.memory_details["used"] == 64
    finally:
        conn.close()

    group = _cli(dep, "server", "group", "create", "--policy",
                 "anti-affinity", "spread")
    assert group["policy"] == "anti-affinity" or \
        group.get("policies") == "anti-affinity"
    spread = [_boot(dep, name, "--hint", f"group={group['id']}")["id"]
              for name in ("a1", "a2")]
    assert sorted(_host(dep, s) for s in spread) == list(HOSTS)
    third = _boot(dep, "a3", "--hint", f"group={group['id']}", wait=False)
    wait_until(lambda: _cli(dep, "server", "show", third["id"])[
        "status"] == "ERROR", 60, "the third server in ERROR")
    fault = _cli(dep, "server", "show", third["id"])["fault"]
    assert "No valid host" in fault["message"]
    members = _cli(dep, "server", "group", "show", "spread")["members"]
    assert set(spread) | {third["id"]} == set(
        members.split(", ") if isinstance(members, str) else members)

    together = _cli(dep, "server", "group", "create", "--policy",
                    "affinity", "together")
    kept = [_boot(dep, name, "--hint", f"group={together['id']}")["id"]
            for name in ("b1", "b2", "b3")]
    assert len({_host(dep, s) for s in kept}) == 1

    result = dep.openstack(
        "server", "create", "--flavor", FLAVOR_ID, "--image", dep.image_id,
        "--nic", "none", "--hint", f"group={uuid.uuid4()}", "nogroup",
        check=False)
    assert result.returncode != 0 and "could not be found" in result.stderr
    assert all(s["Name"] != "nogroup"
               for s in _cli(dep, "server", "list"))
