"""Security groups through the real openstack CLI (all-in-one, fake
driver, SQLite): the ``default`` group on first use, ``security group
create``/``rule create``/``rule list``/``rule delete``, ``server create
--security-group``, ``server add``/``remove security group``, and bad
input refused with nothing changed."""

from __future__ import annotations

import contextlib
import json
import os

import pytest

from tests.integration.conftest import Pipeline


@pytest.fixture(scope="module")
def dep(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("clisg"))
    dep = Pipeline(workdir, f"sqlite:///{os.path.join(workdir, 'db.sqlite')}")
    dep.seed()
    with contextlib.ExitStack() as stack:
        stack.callback(dep.stop_all)
        proc = dep.start("pyct-all-in-one", host="aio")
        proc.wait_output("compute service on aio started")
        yield dep


def cli(dep, *args):
    return json.loads(dep.openstack(*args, "-f", "json").stdout)


def test_cli_security_groups(dep):
    groups = cli(dep, "security", "group", "list")
    assert [g["Name"] for g in groups] == ["default"]
    web = cli(dep, "security", "group", "create", "--description", "www",
              "web")
    assert web["name"] == "web" and web["description"] == "www"
    rule = cli(dep, "security", "group", "rule", "create", "--ingress",
               "--protocol", "tcp", "--dst-port", "80:81", "--remote-ip",
               "10.0.0.0/8", "web")
    assert (rule["port_range_min"], rule["port_range_max"]) == (80, 81)
    rules = cli(dep, "security", "group", "rule", "list", "web")
    assert {r["Direction"] for r in rules} == {"ingress", "egress"}

    # bad input: Neutron's refusals, nothing changed
    for bad in (["--dst-port", "90:80", "--protocol", "tcp"],
                ["--protocol", "tcp", "--remote-ip", "10.0.0.300/8"],
                ["--protocol", "tcp", "--dst-port", "80:81",
                 "--remote-ip", "10.0.0.0/8"]):
        out = dep.openstack("security", "group", "rule", "create",
                            *bad, "web", check=False)
        assert out.returncode != 0, out.stdout
    assert len(cli(dep, "security", "group", "rule", "list", "web")) == 2

    vm = cli(dep, "server", "create", "--flavor", "m1.tiny", "--image",
             dep.image_id, "--nic", "auto", "--security-group", "web",
             "--wait", "vm")
    assert [g["name"] for g in cli(dep, "server", "show", "vm")[
        "security_groups"]] == ["web"]
    port = cli(dep, "port", "list", "--server", "vm")[0]
    assert cli(dep, "port", "show", port["ID"])["security_group_ids"] == [
        web["id"]]
    dep.openstack("server", "add", "security", "group", "vm", "default")
    assert sorted(g["name"] for g in cli(dep, "server", "show", "vm")[
        "security_groups"]) == ["default", "web"]
    dep.openstack("server", "remove", "security", "group", "vm", "web")
    assert [g["name"] for g in cli(dep, "server", "show", "vm")[
        "security_groups"]] == ["default"]
    assert dep.openstack("security", "group", "delete", "default",
                         check=False).returncode != 0
    dep.openstack("security", "group", "rule", "delete", rule["id"])
    dep.openstack("security", "group", "delete", "web")
    assert [g["Name"] for g in cli(dep, "security", "group", "list")] == [
        "default"]
