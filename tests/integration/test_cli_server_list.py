"""``openstack server list`` filters and sorting through the real CLI and
openstacksdk, against one all-in-one (fake driver, SQLite).

Two projects' servers on two flavors and networks: ``--project`` (admin),
``--tags``/``--not-tags``, ``--ip`` (a prefix), ``--flavor``, ``--name``
with a regex, ``--status``, ``--changes-since``, ``--sort-column`` (the
CLI's), Nova's ``sort_key``/``sort_dir`` through openstacksdk, the
``--limit``/``--marker`` pages openstacksdk follows, and the tag commands
(``server set --tag``, ``server unset --tag``).
"""

from __future__ import annotations

import contextlib
import json
import os

import pytest

from tests.integration.conftest import Pipeline


@pytest.fixture(scope="module")
def dep(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("clilist"))
    dep = Pipeline(workdir, f"sqlite:///{os.path.join(workdir, 'db.sqlite')}")
    dep.seed()
    dep.manage("flavor", "create", "m1.other", "--vcpus", "1", "--ram",
               "64", "--disk", "1", "--id", "9")
    with contextlib.ExitStack() as stack:
        stack.callback(dep.stop_all)
        proc = dep.start("pyct-all-in-one", host="aio")
        proc.wait_output("compute service on aio started")
        yield dep


def cli(dep, *args, cloud="user"):
    return json.loads(dep.openstack(*args, "-f", "json",
                                    cloud=cloud).stdout)


def _boot(dep, name, flavor="m1.tiny", cloud="user", *extra):
    return cli(dep, "server", "create", "--flavor", flavor, "--image",
               dep.image_id, "--nic", "auto", "--wait", *extra, name,
               cloud=cloud)


def test_cli_server_list_filters_and_sorting(dep):
    web = _boot(dep, "web-1")
    _boot(dep, "web-2", "m1.other")
    _boot(dep, "db-1")
    theirs = _boot(dep, "other-1", "m1.tiny", "other")

    def listed(*args, cloud="user"):
        return [s["Name"] for s in cli(dep, "server", "list", *args,
                                       cloud=cloud)]

    # tags through the CLI (2.26 tag API), then filtered on (2.26)
    dep.openstack("server", "set", "--tag", "frontend", "--tag", "blue",
                  "web-1")
    dep.openstack("server", "set", "--tag", "frontend", "web-2")
    shown = cli(dep, "server", "show", "web-1")
    assert sorted(shown["tags"]) == ["blue", "frontend"]
    assert sorted(listed("--tags", "frontend")) == ["web-1", "web-2"]
    assert listed("--tags", "frontend,blue") == ["web-1"]
    assert listed("--not-tags", "frontend") == ["db-1"]
    dep.openstack("server", "unset", "--tag", "blue", "web-1")
    assert listed("--tags", "blue") == []

    # --ip is Nova's prefix match: the first server's address only
    address = shown["addresses"]["private"][0]
    assert listed("--ip", address + "$") == ["web-1"]
    prefix = address.rsplit(".", 1)[0]
    assert sorted(listed("--ip", prefix)) == ["db-1", "web-1", "web-2"]
    assert listed("--ip", "10.99.") == []

    assert listed("--flavor", "m1.other") == ["web-2"]
    assert sorted(listed("--name", "^web-")) == ["web-1", "web-2"]

    # the CLI's column sort (this openstack CLI has no --sort any more),
    # and Nova's sort keys through openstacksdk
    assert listed("--sort-column", "Name") == ["db-1", "web-1", "web-2"]
    assert listed("--sort-column", "Name", "--sort-descending") == [
        "web-2", "web-1", "db-1"]
    conn = dep.sdk_connection()
    assert [s.name for s in conn.compute.servers(
        sort_key="display_name", sort_dir="asc")] == [
            "db-1", "web-1", "web-2"]
    assert [s.name for s in conn.compute.servers(
        sort_key="display_name", sort_dir="desc")] == [
            "web-2", "web-1", "db-1"]
    assert listed("--status", "ACTIVE", "--limit", "2") == [
        "db-1", "web-2"]
    assert listed("--changes-since", "2999-01-01T00:00:00Z") == []

    # an admin lists one project (the CLI sends all_tenants and
    # project_id); a member cannot list all projects
    assert listed("--project", "other", cloud="admin") == ["other-1"]
    assert sorted(listed("--all-projects", cloud="admin")) == [
        "db-1", "other-1", "web-1", "web-2"]
    result = dep.openstack("server", "list", "--all-projects",
                           check=False)
    assert result.returncode != 0 and "403" in result.stderr

    # openstacksdk follows the encoded next links to the end
    paged = [s.name for s in conn.compute.servers(limit=1,
                                                  name="web-")]
    assert sorted(paged) == ["web-1", "web-2"]
    assert web["id"] != theirs["id"]
