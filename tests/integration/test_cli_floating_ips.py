"""Floating IPs through the real openstack CLI, against an all-in-one with
the fake driver (in-process bus, SQLite) and ``[network]
floating_ip_range``: ``network list --external`` shows ``public``,
``floating ip create/set --port/unset --port/show/list/delete`` go round,
and another project's port is refused with nothing changed. (The NAT the
kernel does for them: tests/privileged/test_nat_e2e.py.)
"""

from __future__ import annotations

import contextlib
import json
import os

import pytest

from tests.integration.conftest import Pipeline

RANGE = "203.0.113.64/29"


@pytest.fixture(scope="module")
def dep(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("clifip"))
    dep = Pipeline(workdir, f"sqlite:///{os.path.join(workdir, 'db.sqlite')}",
                   extra={"network": {"floating_ip_range": RANGE,
                                      "pool_cidr": "10.246.0.0/16"}})
    dep.seed()
    with contextlib.ExitStack() as stack:
        stack.callback(dep.stop_all)
        proc = dep.start("pyct-all-in-one", host="aio")
        proc.wait_output("compute service on aio started")
        yield dep


def cli(dep, *args):
    return json.loads(dep.openstack(*args, "-f", "json").stdout)


def test_cli_floating_ip_round_trip(dep):
    external = cli(dep, "network", "list", "--external")
    assert [n["Name"] for n in external] == ["public"]
    server = cli(dep, "server", "create", "--flavor", "m1.tiny", "--image",
                 dep.image_id, "--nic", "auto", "--wait", "vm")
    port = cli(dep, "port", "list", "--server", server["id"])[0]
    fip = cli(dep, "floating", "ip", "create", "public")
    assert fip["floating_ip_address"] == "203.0.113.65"
    assert fip["port_id"] is None
    dep.openstack("floating", "ip", "set", "--port", port["ID"],
                  fip["floating_ip_address"])
    shown = cli(dep, "floating", "ip", "show", fip["id"])
    assert shown["port_id"] == port["ID"]
    assert shown["fixed_ip_address"] == port["Fixed IP Addresses"][0][
        "ip_address"]
    assert shown["status"] == "ACTIVE"
    listed = cli(dep, "floating", "ip", "list", "--port", port["ID"])
    assert [f["ID"] for f in listed] == [fip["id"]]
    # another project can neither see the floating IP nor use the port
    theirs = cli(dep, "floating", "ip", "create", "public", "--os-cloud",
                 "other")
    refused = dep.openstack("--os-cloud", "other", "floating", "ip", "set",
                            "--port", port["ID"], theirs["id"], check=False)
    assert refused.returncode != 0
    assert cli(dep, "floating", "ip", "show", theirs["id"], "--os-cloud",
               "other")["port_id"] is None
    assert dep.openstack("floating", "ip", "delete", theirs["id"],
                         check=False).returncode != 0
    dep.openstack("--os-cloud", "other", "floating", "ip", "delete",
                  theirs["id"])
    dep.openstack("floating", "ip", "unset", "--port", fip["id"])
    assert cli(dep, "floating", "ip", "show", fip["id"])["port_id"] is None
    dep.openstack("floating", "ip", "delete", fip["id"])
    assert cli(dep, "floating", "ip", "list") == []
    dep.openstack("server", "delete", "--wait", server["id"])
