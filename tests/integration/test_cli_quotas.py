"""Quotas and limits through the real openstack CLI and openstacksdk.

One ``pyct-api`` process over a migrated SQLite database (no compute
service: nothing here boots): ``openstack quota show`` (compute only and
all services), ``quota set --instances``, ``quota show --default``,
``quota show --usage``, ``limits show --absolute`` and openstacksdk's
``get_compute_limits``; a member may not set quotas nor read another
project's.
"""

from __future__ import annotations

import contextlib
import json
import os

import subprocess

import openstack.exceptions
import pytest
import yaml

from tests.integration.conftest import Pipeline
from tests.services import BIN


@pytest.fixture(scope="module")
def dep(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("cliquota"))
    dep = Pipeline(workdir, f"sqlite:///{os.path.join(workdir, 'db.sqlite')}",
                   extra={"quota": {"instances": 7, "cores": 11}})
    dep.seed()
    with contextlib.ExitStack() as stack:
        stack.callback(dep.stop_all)
        dep.start("pyct-api")
        yield dep


def _clouds(dep) -> str:
    """clouds.yaml with password clouds through the noauth token issue
    (so the CLI knows its project from the token, as with Keystone)."""
    path = os.path.join(dep.workdir, "clouds-pw.yaml")
    clouds = {name: {
        "auth_type": "password",
        "auth": {"auth_url": f"{dep.endpoint}/identity/v3",
                 "username": user, "password": "x", "project_name": project,
                 "user_domain_name": "Default",
                 "project_domain_name": "Default"},
        "region_name": "RegionOne", "identity_api_version": 3}
        for name, user, project in (("user", "demo", "demo"),
                                    ("admin", "admin", "admin"))}
    with open(path, "w") as f:
        yaml.safe_dump({"clouds": clouds}, f)
    return path


def osc(dep, *args, cloud="user", check=True):
    env = dict(os.environ, OS_CLIENT_CONFIG_FILE=_clouds(dep))
    result = subprocess.run([os.path.join(BIN, "openstack"), "--os-cloud",
                             cloud, *args], capture_output=True, text=True,
                            env=env, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"openstack {' '.join(args)} failed:\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


def cli(dep, *args, cloud="user"):
    return json.loads(osc(dep, *args, "-f", "json", cloud=cloud).stdout)


def _rows(listing) -> dict:
    return {row["Resource"]: row["Limit"] for row in listing}


def test_quota_show_all_services_and_compute(dep):
    # no project: the CLI takes it from the token, and asks compute AND
    # the network service (pyct's subset answers Neutron's quota read)
    every = _rows(cli(dep, "quota", "show"))
    assert every["instances"] == 7 and every["cores"] == 11
    assert every["ram"] == 51200 and every["key-pairs"] == 100
    assert every["networks"] == 1 and every["routers"] == 0
    compute = _rows(cli(dep, "quota", "show", "--compute", "demo"))
    assert compute["instances"] == 7 and compute.get("networks") is None
    default = _rows(cli(dep, "quota", "show", "--default", "--compute"))
    assert default["instances"] == 7
    usage = cli(dep, "quota", "show", "--usage", "--compute")
    inst = [r for r in usage if r["Resource"] == "instances"][0]
    assert (inst["Limit"], inst["In Use"], inst["Reserved"]) == (7, 0, 0)


def test_quota_set_is_admin_only_and_shows_everywhere(dep):
    refused = osc(dep, "quota", "set", "--instances", "3", "demo",
                  check=False)
    assert refused.returncode != 0 and "403" in refused.stderr
    assert _rows(cli(dep, "quota", "show", "--compute"))["instances"] == 7

    osc(dep, "quota", "set", "--instances", "3", "--ram", "2048", "demo",
        cloud="admin")
    try:
        shown = _rows(cli(dep, "quota", "show", "--compute", "demo",
                          cloud="admin"))
        assert (shown["instances"], shown["ram"]) == (3, 2048)
        limits = {r["Name"]: r["Value"]
                  for r in cli(dep, "limits", "show", "--absolute")}
        # the CLI shows the SDK's attribute names
        assert limits["instances"] == 3 and limits["total_ram"] == 2048
        assert limits["instances_used"] == 0 and limits["keypairs"] == 100
        assert limits["server_meta"] == 128
        # the admin asks for another project's limits (tenant_id=)
        other = {r["Name"]: r["Value"] for r in cli(
            dep, "limits", "show", "--absolute", "--project", "demo",
            cloud="admin")}
        assert other["instances"] == 3
        # a negative limit other than -1 is refused, nothing changes
        bad = osc(dep, "quota", "set", "--instances", "-5", "demo",
                  cloud="admin", check=False)
        assert bad.returncode != 0 and "400" in bad.stderr
        assert _rows(cli(dep, "quota", "show", "--compute",
                         "demo"))["instances"] == 3
    finally:
        osc(dep, "quota", "delete", "--compute", "demo", cloud="admin")
    assert _rows(cli(dep, "quota", "show", "--compute"))["instances"] == 7


def test_sdk_compute_limits_and_other_projects(dep):
    conn = dep.sdk_connection("user")
    limits = conn.get_compute_limits()
    assert limits.instances == 7 and limits.total_cores == 11
    assert limits.instances_used == 0 and limits.server_meta == 128
    # a member reads its own quotas, not another project's (Nova's 403)
    assert conn.compute.get_quota_set("demo").instances == 7
    with pytest.raises(openstack.exceptions.ForbiddenException):
        conn.compute.get_quota_set("other")
    with pytest.raises(openstack.exceptions.ForbiddenException):
        conn.compute.update_quota_set("demo", instances=50)
