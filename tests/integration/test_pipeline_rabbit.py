"""The whole pipeline as separate processes over the real RabbitMQ.

``pyct-api`` and two ``pyct-compute`` processes (hosts compute-a and
compute-b) share a PostgreSQL or a MariaDB database, migrated with
``pyct-manage db sync``. Six servers booted through the SDK spread over
both hosts and become ACTIVE; each one's console comes back from the
process that spawned it (the fake driver keeps guests in that process's
memory, so a call routed to the wrong host would fail); one is rebooted,
stopped and started; all are deleted and no instance row is left.
"""

from __future__ import annotations

import collections

import pytest

from tests.integration.conftest import (BACKENDS, FLAVOR_ID, wait_status,
                                        wait_until)

HOSTS = ("compute-a", "compute-b")


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_six_servers_over_two_hosts(pipeline_factory, backend):
    dep = pipeline_factory(backend)
    dep.start_all(*HOSTS)
    conn = dep.sdk_connection("user")

    created = [conn.compute.create_server(
        name=f"vm{i}", image_id=dep.image_id, flavor_id=FLAVOR_ID,
        networks="none") for i in range(6)]
    servers = [wait_status(conn, s.id, "ACTIVE") for s in created]
    assert all(s.power_state == 1 for s in servers)

    # admins see where each server runs: the SDK's compute_host is
    # OS-EXT-SRV-ATTR:host (the CLI's admin `server show` is checked in
    # test_pipeline_clients)
    admin = dep.sdk_connection("admin")
    hosts = {s.id: s.compute_host
             for s in admin.compute.servers(all_projects=True)}
    assert set(hosts) == {s.id for s in servers}
    per_host = collections.Counter(hosts.values())
    assert set(per_host) == set(HOSTS), per_host
    assert min(per_host.values()) >= 2, per_host
    wait_until(lambda: dep.running_vms() == dict(per_host), 10,
               "the hosts' resource reports to count their servers")
    for s in servers:
        # an RPC call answered by the process holding the guest
        out = conn.compute.get_server_console_output(s.id)["output"]
        assert f"{s.name} login:" in out

    target = servers[0]
    conn.compute.reboot_server(target, "SOFT")
    wait_status(conn, target.id, "ACTIVE")
    out = conn.compute.get_server_console_output(target.id)["output"]
    assert "soft reboot #2" in out
    conn.compute.stop_server(target)
    assert wait_status(conn, target.id, "SHUTOFF").power_state == 4
    conn.compute.start_server(target)
    assert wait_status(conn, target.id, "ACTIVE").power_state == 1
    actions = [a.action for a in conn.compute.server_actions(target.id)]
    assert sorted(actions) == ["create", "reboot", "start", "stop"]

    for s in servers:
        conn.compute.delete_server(s)
    for s in servers:
        conn.compute.wait_for_delete(s, interval=0.3, wait=30)
    assert list(conn.compute.servers()) == []
    assert list(admin.compute.servers(all_projects=True)) == []
    assert dep.live_instances() == []
    # and both hosts report that in their next resource report
    wait_until(lambda: dep.running_vms() == dict.fromkeys(HOSTS, 0), 10,
               "both hosts to report no instances")
    for proc in dep.processes:
        assert proc.alive(), proc.output()[-3000:]
