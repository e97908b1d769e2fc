"""Cold migration between two compute services with the real openstack
CLI.

``pyct-api`` and two ``pyct-compute`` processes (compute-a, compute-b) on
PostgreSQL over the real RabbitMQ, the guest streamed between them over
the authenticated loopback channel. As admin: ``server migrate --host
--wait`` (2.56) leaves the server VERIFY_RESIZE on the other host, the
source still holding its flavor in ``hypervisor show``; ``server resize
confirm`` makes it ACTIVE there and frees the source; a second
``server migrate`` back is undone by ``server resize revert``; ``server
migration list`` shows both moves with Nova's statuses; the tenant's
``server event list`` shows the actions.
"""

from __future__ import annotations

import json

from tests.integration.conftest import FLAVOR_ID, wait_until

HOSTS = ("compute-a", "compute-b")
HOST_KEY = "OS-EXT-SRV-ATTR:host"


def _cli(dep, *args, cloud="admin"):
    return json.loads(dep.openstack(*args, "-f", "json", cloud=cloud).stdout)


def _show(dep, name):
    return _cli(dep, "server", "show", name)


def _ram_used(dep, host):
    # (2.88 dropped the usage from the hypervisor's view, as Nova did)
    return _cli(dep, "--os-compute-api-version", "2.87", "hypervisor",
                "show", host)["memory_mb_used"]


def test_cli_cold_migrate_confirm_and_revert(pipeline_factory):
    dep = pipeline_factory("postgresql", extra={
        "migration": {"address": "127.0.0.1"}})
    dep.start_all(*HOSTS)
    server = _cli(dep, "server", "create", "--flavor", FLAVOR_ID,
                  "--image", dep.image_id, "--nic", "none", "--wait",
                  "mover", cloud="user")
    source = _show(dep, server["id"])[HOST_KEY]
    dest = next(h for h in HOSTS if h != source)
    before = {h: _ram_used(dep, h) for h in HOSTS}

    dep.openstack("--os-compute-api-version", "2.56", "server", "migrate",
                  "--host", dest, "--wait", server["id"], cloud="admin")
    shown = _show(dep, server["id"])
    assert (shown["status"], shown[HOST_KEY]) == ("VERIFY_RESIZE", dest)
    # both ends hold m1.tiny's 512 MiB until the move is confirmed: the
    # source keeps what it had, the destination gained it
    assert {h: _ram_used(dep, h) - before[h] for h in HOSTS} == {
        source: 0, dest: 512}

    dep.openstack("server", "resize", "confirm", server["id"],
                  cloud="admin")
    wait_until(lambda: _show(dep, server["id"])["status"] == "ACTIVE", 30,
               "the confirm")
    assert _show(dep, server["id"])[HOST_KEY] == dest
    wait_until(lambda: _ram_used(dep, source) == before[source] - 512, 30,
               "the source to be freed")

    # and back again, reverted: it stays where it was
    dep.openstack("--os-compute-api-version", "2.56", "server", "migrate",
                  "--host", source, "--wait", server["id"], cloud="admin")
    assert _show(dep, server["id"])[HOST_KEY] == source
    dep.openstack("server", "resize", "revert", server["id"],
                  cloud="admin")
    wait_until(lambda: _show(dep, server["id"])["status"] == "ACTIVE", 30,
               "the revert")
    assert _show(dep, server["id"])[HOST_KEY] == dest

    moves = _cli(dep, "--os-compute-api-version", "2.59", "server",
                 "migration", "list", "--server", server["id"])
    assert sorted((m["Source Compute"], m["Dest Compute"], m["Status"])
                  for m in moves) == sorted([
                      (source, dest, "confirmed"),
                      (dest, source, "reverted")])
    events = _cli(dep, "server", "event", "list", server["id"],
                  cloud="user")
    assert [e["Action"] for e in events][:4] == [
        "revertResize", "migrate", "confirmResize", "migrate"]
    dep.openstack("server", "delete", "--wait", server["id"], cloud="user")
