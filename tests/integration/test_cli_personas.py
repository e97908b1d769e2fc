"""Personas through the real openstack CLI and openstacksdk, against real
processes: ``pyct-api`` and one ``pyct-compute`` over the real RabbitMQ,
on PostgreSQL, with the noauth strategy's Keystone-style password login
(token and catalog) as ``etc/pyct/clouds.yaml`` uses it.

A small version of the unit persona matrix: the project's member creates
a server; its reader (``[api] noauth_reader_users``) lists and shows it
but cannot delete, stop or rename it, and nothing in the database moves
when refused; another project's member gets "no such server"; the admin
sees it. The CLI's version discovery (``openstack versions show``) and
the SDK's endpoint data read Nova's version documents.
A flavor's ``pyct:nesting`` is the admin's alone to set or unset.
"""

from __future__ import annotations

import contextlib
import json
import os
import time

import openstack
import openstack.config
import pytest
import sqlalchemy as sa
import yaml

from pyct_driver.api import microversion
from tests.integration.conftest import (open_pipeline, wait_status,
                                        wait_until)

# cloud name -> (user, project)
CLOUDS = {"member": ("demo", "demo"), "reader": ("reader", "demo"),
          "other": ("bob", "other"), "admin": ("admin", "admin")}


@pytest.fixture(scope="module")
def dep(tmp_path_factory):
    with contextlib.ExitStack() as stack:
        dep = open_pipeline(stack, str(tmp_path_factory.mktemp("personas")
                                       / "dep"), "postgresql")
        dep.start_all("compute-a")
        clouds = {name: {
            "auth_type": "password",
            "auth": {"auth_url": dep.endpoint + "/identity/v3",
                     "username": user, "password": "noauth",
                     "project_name": project,
                     "user_domain_name": "Default",
                     "project_domain_name": "Default"},
            "region_name": "RegionOne", "identity_api_version": 3}
            for name, (user, project) in CLOUDS.items()}
        path = os.path.join(dep.workdir, "clouds.yaml")
        with open(path, "w") as f:
            yaml.safe_dump({"clouds": clouds}, f)
        # Deployment.openstack and sdk_connection read this file
        dep.clouds_yaml = lambda: path
        yield dep


def cli(dep, cloud: str, *args: str, check: bool = True):
    return dep.openstack(*args, cloud=cloud, check=check)


def cli_json(dep, cloud: str, *args: str):
    return json.loads(cli(dep, cloud, *args, "-f", "json").stdout)


def _state(dep) -> list:
    """Every instance row and every instance action, as the DB has them."""
    engine = dep.engine()
    try:
        with engine.connect() as conn:
            return [sorted(map(tuple, conn.execute(sa.text(
                f"SELECT * FROM {table}")).all()))
                for table in ("instances", "instance_actions", "ports")]
    finally:
        engine.dispose()


def test_reader_reads_member_acts_other_sees_nothing(dep):
    server = cli_json(dep, "member", "server", "create", "--flavor",
                      "m1.tiny", "--image", dep.image_id, "--nic", "auto",
                      "vm1")
    sid = server["id"]
    # the SDK polls faster than the CLI's --wait (every 5 s)
    conn = dep.sdk_connection("member")
    wait_status(conn, sid, "ACTIVE")

    listed = cli_json(dep, "reader", "server", "list")
    assert [r["ID"] for r in listed] == [sid]
    assert cli_json(dep, "reader", "server", "show", sid)["id"] == sid
    assert [n["Name"] for n in cli_json(dep, "reader", "network",
                                        "list")] == ["private"]
    before = _state(dep)
    for args in (("server", "delete", sid), ("server", "stop", sid),
                 ("server", "set", "--name", "renamed", sid),
                 ("server", "reboot", sid)):
        result = cli(dep, "reader", *args, check=False)
        assert result.returncode != 0, args
        assert "HTTP 403" in result.stderr or "403" in result.stderr, (
            args, result.stderr)
    assert _state(dep) == before

    result = cli(dep, "other", "server", "show", sid, check=False)
    assert result.returncode != 0
    assert f"No Server found for {sid}" in result.stderr
    result = cli(dep, "other", "server", "delete", sid, check=False)
    assert result.returncode != 0
    assert cli_json(dep, "other", "server", "list") == []
    assert cli_json(dep, "other", "network", "list") == []
    assert _state(dep) == before

    shown = cli_json(dep, "admin", "server", "show", sid)
    assert shown["OS-EXT-SRV-ATTR:host"] == "compute-a"
    cli(dep, "member", "server", "stop", sid)
    wait_status(conn, sid, "SHUTOFF")
    cli(dep, "member", "server", "delete", sid)
    wait_until(lambda: not list(conn.compute.servers()), 30,
               "the member's delete")


def test_cli_and_sdk_discover_novas_versions(dep):
    rows = cli_json(dep, "reader", "versions", "show", "--service",
                    "compute")
    by_id = {r["Version"]: r for r in rows}
    assert by_id["2.1"]["Status"] == "CURRENT"
    assert by_id["2.1"]["Max Microversion"] == microversion.to_str(
        microversion.MAX_VERSION)
    assert by_id["2.0"]["Status"] == "SUPPORTED"
    conn = dep.sdk_connection("reader")
    data = conn.compute.get_endpoint_data()
    assert data.max_microversion == microversion.MAX_VERSION
    assert data.min_microversion == (2, 1)
    config = openstack.config.OpenStackConfig(
        config_files=[dep.clouds_yaml()]).get_one(
            cloud="member", compute_endpoint_override=dep.endpoint + "/v2")
    legacy = openstack.connection.Connection(config=config)
    assert list(legacy.compute.servers()) == []


def test_policy_yaml_beside_the_config_overrides_live(dep):
    """oslo.policy finds policy.yaml beside pyct.conf (``[oslo_policy]
    policy_file``'s default) and rereads it when it changes, within the
    API's reload interval (1 s: ``api.policy.Policy``)."""
    path = os.path.join(os.path.dirname(dep.conf), "policy.yaml")
    assert cli_json(dep, "member", "keypair", "list") == []
    with open(path, "w") as f:
        yaml.safe_dump({"os_compute_api:os-keypairs:index":
                        "rule:context_is_admin"}, f)
    time.sleep(1.5)
    try:
        result = cli(dep, "member", "keypair", "list", check=False)
        assert result.returncode != 0 and "403" in result.stderr, \
            result.stderr
        assert cli_json(dep, "admin", "keypair", "list") == []
    finally:
        with open(path, "w") as f:
            f.write("{}\n")
    time.sleep(1.5)
    assert cli_json(dep, "member", "keypair", "list") == []


def test_only_the_admin_sets_pyct_nesting_on_a_flavor(dep):
    """``pyct:nesting`` (containers inside guests) through the real CLI:
    the project's member is refused (403) and the flavor keeps no such
    property; the admin sets it, a bad value is a 400, and it comes off
    again."""
    def props():
        return cli_json(dep, "admin", "flavor", "show", "m1.tiny"
                        )["properties"] or {}

    for cloud in ("member", "reader", "other"):
        result = cli(dep, cloud, "flavor", "set", "--property",
                     "pyct:nesting=true", "m1.tiny", check=False)
        assert result.returncode != 0, cloud
        assert "403" in result.stderr, (cloud, result.stderr)
        assert "pyct:nesting" not in props()
    result = cli(dep, "admin", "flavor", "set", "--property",
                 "pyct:nesting=maybe", "m1.tiny", check=False)
    assert result.returncode != 0 and "400" in result.stderr, result.stderr
    assert "pyct:nesting" not in props()
    cli(dep, "admin", "flavor", "set", "--property", "pyct:nesting=true",
        "m1.tiny")
    try:
        assert props()["pyct:nesting"] == "true"
        result = cli(dep, "member", "flavor", "unset", "--property",
                     "pyct:nesting", "m1.tiny", check=False)
        assert result.returncode != 0
        assert props()["pyct:nesting"] == "true"
    finally:
        cli(dep, "admin", "flavor", "unset", "--property", "pyct:nesting",
            "m1.tiny")
    assert "pyct:nesting" not in props()
