"""Every server list filter, sort key and page against a populated database.

``world`` holds five servers of project p1 (one deleted), one of p2, with
different images, flavors, hosts, zones, keys, tags, locks, states and
addresses. Each filter case shows the filter excludes something and keeps
something; bad values answer Nova's 400s; admin-only filters are dropped
for members as Nova drops them (and at 2.75 unknown names are 400s).
``tests/integration/test_server_list_backends.py`` runs this module again
against PostgreSQL and MariaDB.
"""

from __future__ import annotations

import datetime
import urllib.parse

import pytest

from pyct_driver import states
from pyct_driver.api import flavors
from pyct_driver.db import instances as db_instances
from pyct_driver.db import models
from pyct_driver.db import networks as db_networks
from pyct_driver.db import tags as db_tags
from tests.unit.test_api_app import Harness

T0 = datetime.datetime(2026, 1, 1, 12, 0, 0)
IMG2 = "22222222-2222-4222-8222-222222222222"


def _row(h: Harness, name: str, minute: int, **values) -> dict:
    flavor = values.pop("flavor_id", "1")
    row = {
        "uuid": f"00000000-0000-4000-8000-{minute:012d}", "name": name,
        "hostname": name.replace("&", "-"), "project_id": "p1",
        "user_id": "alice", "host": "node1", "image_ref": h.image["id"],
        "flavor_id": flavor, "flavor": {"flavorid": flavor, "name": "f",
                                        "vcpus": 1, "memory_mb": 512,
                                        "root_gb": 1, "ephemeral_gb": 0,
                                        "swap": 0, "extra_specs": {}},
        "vm_state": states.ACTIVE, "task_state": None,
        "power_state": states.RUNNING, "metadata": {},
        "reservation_id": f"r-{name[:4]}", "launch_index": 0,
        "availability_zone": None, "key_name": None, "config_drive": False,
        "locked": False, "description": None,
        "created_at": T0 + datetime.timedelta(minutes=minute),
        "updated_at": T0 + datetime.timedelta(minutes=minute, seconds=30),
        "launched_at": T0 + datetime.timedelta(minutes=minute, seconds=5),
    }
    row.update(values)
    db_instances.create_many(h.db, [row])
    return row


def build(h: Harness) -> Harness:
    """The populated database (any backend ``h`` runs on)."""
    flavors.create_flavor(h.db, "m1.big", 2, 1024, 2, flavorid="2")
    a = _row(h, "alpha", 1, availability_zone="nova", key_name="k1",
             config_drive=True, description="front end")
    b = _row(h, "b&c", 2, image_ref=IMG2, flavor_id="2", host="node2",
             locked=True, vm_state=states.STOPPED,
             power_state=states.SHUTDOWN, user_id="carol")
    _row(h, "gamma", 3, host=None, vm_state=states.ERROR)
    _row(h, "b&c-two", 4, launch_index=1, task_state=states.REBOOTING)
    _row(h, "delta", 5, project_id="p2", user_id="bob")
    _row(h, "soft", 6, vm_state=states.SOFT_DELETED)
    old = _row(h, "old", 0)
    db_instances.soft_delete(h.db, old["uuid"])
    with h.db.session() as session:     # the deletion's time, fixed
        row = session.get(models.Instance, db_instances.get(
            h.db, old["uuid"], read_deleted=True)["id"])
        row.updated_at = T0 + datetime.timedelta(minutes=10)
    ipam = db_networks.IpamSettings(pool_cidr="10.213.0.0/16")
    net0 = db_networks.create_network(h.db, "p1", "n0", ipam, list)
    net1 = db_networks.create_network(h.db, "p1", "n1", ipam, list)
    db_networks.allocate_port(h.db, a["uuid"], "p1", net0["id"],
                              "10.213.0.5")
    db_networks.allocate_port(h.db, b["uuid"], "p1", net1["id"],
                              "10.213.1.7")
    db_tags.replace(h.db, a["uuid"], ["web", "prod"])
    db_tags.replace(h.db, b["uuid"], ["web"])
    return h


@pytest.fixture(scope="module")
def world():
    return build(Harness())


def names(world, query: str = "", version: str = "2.96", admin=False,
          detail=False) -> list[str]:
    resp = get(world, query, version, admin, detail)
    assert resp.status_int == 200, resp.text
    return [s["name"] for s in resp.json["servers"]]


def get(world, query: str = "", version: str = "2.96", admin=False,
        detail=False):
    path = "/v2.1/servers" + ("/detail" if detail else "") + (
        "?" + query if query else "")
    token = "admin:adminproj" if admin else "alice:p1"
    return world.request("GET", path, token=token, version=version)


def fault(world, query: str, version: str = "2.96", admin=False):
    resp = get(world, query, version, admin)
    return resp.status_int, list(resp.json.values())[0]["message"]


LIVE_P1 = ["b&c-two", "gamma", "b&c", "alpha"]


def test_default_is_own_live_servers_newest_first(world):
    assert names(world) == LIVE_P1
    assert names(world, detail=True) == LIVE_P1


@pytest.mark.parametrize("query,expected", [
    ("name=alpha", ["alpha"]),
    ("name=%5Eb%26c", ["b&c-two", "b&c"]),        # a regex: ^b&c
    ("name=b%26c%24", ["b&c"]),
    ("status=SHUTOFF", ["b&c"]),
    ("status=ERROR&status=SHUTOFF", ["gamma", "b&c"]),
    ("image=" + IMG2, ["b&c"]),
    ("flavor=2", ["b&c"]),
    ("flavor=nosuch", []),
    ("ip=10.213.0", ["alpha"]),                   # a prefix: not "no address"
    ("ip=10.213", ["b&c", "alpha"]),
    ("ip=10%5C.213%5C.1%5C.7", ["b&c"]),
    ("ip6=.", []),                                # pyct has no IPv6 address
    ("reservation_id=r-gamm", ["gamma"]),
    ("tags=web", ["b&c", "alpha"]),
    ("tags=web,prod", ["alpha"]),
    ("tags-any=prod,nosuch", ["alpha"]),
    ("not-tags=web,prod", ["b&c-two", "gamma", "b&c"]),
    ("not-tags-any=prod,nosuch", ["b&c-two", "gamma", "b&c"]),
    ("locked=true", ["b&c"]),
    ("locked=False", ["b&c-two", "gamma", "alpha"]),
    ("availability_zone=nov", ["alpha"]),
    ("key_name=k1", ["alpha"]),
    ("config_drive=True", ["alpha"]),
    ("user_id=carol", ["b&c"]),
    ("vm_state=error", ["gamma"]),
    ("power_state=4", ["b&c"]),
    ("hostname=gam", ["gamma"]),
    ("changes-since=2026-01-01T12:03:00Z",
     ["soft", "b&c-two", "gamma", "old"]),
    ("changes-before=2026-01-01T12:02:59", ["b&c", "alpha"]),
    ("changes-since=2026-01-01T12:02:00&changes-before=2026-01-01T12:03:45",
     ["gamma", "b&c"]),
    ("created_at=12:04", ["b&c-two"]),
    ("launched_at=12:01:05", ["alpha"]),
])
def test_member_filters(world, query, expected):
    assert names(world, query) == expected


def test_changes_since_includes_deleted(world):
    assert names(world, "changes-since=2026-01-01T12:05:00Z") == [
        "soft", "old"]
    body = get(world, "changes-since=2026-01-01T12:05:00Z",
               detail=True).json["servers"]
    assert [b["status"] for b in body] == ["SOFT_DELETED", "DELETED"]


@pytest.mark.parametrize("query,expected", [
    ("all_tenants=1", ["delta", "b&c-two", "gamma", "b&c", "alpha"]),
    ("all_tenants=1&project_id=p2", ["delta"]),
    ("all_tenants=1&tenant_id=p2", ["delta"]),
    ("all_tenants=&project_id=p1&host=node2", ["b&c"]),
    ("all_tenants=1&node=node2", ["b&c"]),
    ("all_tenants=1&deleted=true", ["soft", "old"]),
    ("all_tenants=1&deleted=true&soft_deleted=", ["old"]),
    ("all_tenants=1&deleted=false&soft_deleted=1&name=t",
     ["soft", "delta", "b&c-two"]),
    ("all_tenants=1&deleted=false&name=t", ["delta", "b&c-two"]),
    ("all_tenants=1&task_state=rebooting", ["b&c-two"]),
    ("all_tenants=1&image_ref=" + IMG2, ["b&c"]),
    ("all_tenants=1&display_name=%5Eb", ["b&c-two", "b&c"]),
    ("all_tenants=1&display_description=end", ["alpha"]),
    ("all_tenants=1&locked_by=owner", ["b&c"]),
    ("all_tenants=1&changes-since=2026-01-01T00:00:00&terminated_at=20",
     ["old"]),
    ("all_tenants=1&auto_disk_config=0&name=alpha", ["alpha"]),
    # columns a pyct server never has a value in: nothing matches, as in
    # Nova for servers that have none
    ("all_tenants=1&kernel_id=.", []),
    ("all_tenants=1&ramdisk_id=.", []),
    ("all_tenants=1&root_device_name=.", []),
    ("all_tenants=1&access_ip_v4=.", []),
    ("all_tenants=1&access_ip_v6=.", []),
    ("all_tenants=1&progress=.", []),
    ("all_tenants=1&auto_disk_config=1", []),
    ("all_tenants=1&deleted=false&name=gamma", ["gamma"]),
    ("all_tenants=1&status=DELETED", ["old"]),
    ("all_tenants=1&uuid=00000000-0000-4000-8000-000000000003", ["gamma"]),
    ("all_tenants=1&launch_index=1", ["b&c-two"]),
    ("all_tenants=1&description=front", ["alpha"]),
    ("all_tenants=1&user_id=bob", ["delta"]),
    # an admin without all_tenants sees its own project only
    ("project_id=p1", []),
])
def test_admin_filters(world, query, expected):
    assert names(world, query, admin=True) == expected


def test_admin_only_filters_are_dropped_for_members(world):
    # Nova strips what a member may not use; the member still sees only
    # its own servers
    for query in ("host=node2", "deleted=true", "uuid=nosuch",
                  "project_id=p2", "node=x", "description=x"):
        assert names(world, query) == LIVE_P1, query
    # before 2.83 these were admin-only too
    assert names(world, "key_name=k1", version="2.82") == LIVE_P1
    assert names(world, "locked=true", version="2.72") == LIVE_P1
    assert names(world, "tags=web", version="2.25") == LIVE_P1
    assert names(world, "hostname=gam", version="2.89") == LIVE_P1


def test_members_may_not_list_all_tenants_or_deleted(world):
    assert fault(world, "all_tenants=1")[0] == 403
    assert fault(world, "status=DELETED") == (
        403, "Only administrators may list deleted instances")


def test_unknown_params_ignored_before_275_refused_from(world):
    assert names(world, "foo=bar", version="2.74") == LIVE_P1
    assert fault(world, "foo=bar", version="2.75") == (
        400, "Additional properties are not allowed ('foo' was unexpected)")
    # known but admin-only: still dropped for a member at 2.75
    assert names(world, "host=node2", version="2.75") == LIVE_P1


def test_joined_table_and_private_filters_are_400_for_admins(world):
    assert fault(world, "metadata=x", admin=True) == (
        400, "Invalid filter field: metadata.")
    assert fault(world, "_secret=1", admin=True) == (
        400, "Invalid filter field: _secret.")
    assert names(world, "metadata=x") == LIVE_P1


@pytest.mark.parametrize("query,message", [
    ("name=(", "Invalid input for query parameters name. Value: (. '(' is "
               "not a 'regex'"),
    ("ip=[", "Invalid input for query parameters ip. Value: [. '[' is not "
             "a 'regex'"),
    ("changes-since=yesterday", "Invalid input for query parameters "
     "changes-since. Value: yesterday. 'yesterday' is not a 'date-time'"),
    ("changes-since=2026-01-02T00:00:00&changes-before=2026-01-01T00:00:00",
     "The value of changes-since must be less than or equal to "
     "changes-before."),
    ("status=NOSUCH", "Invalid status value"),
    ("locked=maybe", "Invalid input received: Unrecognized value 'maybe', "
     "acceptable values are: '0', '1', 'f', 'false', 'n', 'no', 'off', "
     "'on', 't', 'true', 'y', 'yes'"),
    ("all_tenants=maybe", None),
    ("sort_key=nosuch", None),
    ("sort_key=name", None),            # Nova's key is display_name
    ("sort_key=display_name&sort_dir=up", "Invalid input received: "
     "Unknown sort direction, must be 'desc' or 'asc'"),
    ("sort_key=display_name&sort_dir=asc&sort_dir=desc",
     "Invalid input received: Sort direction size exceeds sort key size"),
    ("limit=-1", "limit param must be non-negative"),
    ("limit=x", "limit param must be an integer"),
    ("marker=nosuch", "marker [nosuch] not found"),
    ("sort_key=deleted", None),       # ignored before 2.75, refused from
])
def test_bad_values_are_400(world, query, message):
    code, text = fault(world, query)
    assert code == 400, (query, text)
    if message:
        assert text == message


def test_invalid_status_before_238_is_an_empty_list(world):
    assert names(world, "status=NOSUCH", version="2.37") == []


def test_member_may_not_sort_by_host(world):
    assert fault(world, "sort_key=host") == (
        403, "Only administrators can sort servers by host")
    # no host (NULL) sorts first, on every backend
    assert names(world, "sort_key=host&sort_dir=asc&all_tenants=1",
                 admin=True)[0] == "gamma"


@pytest.mark.parametrize("query,expected", [
    ("sort_key=display_name&sort_dir=asc",
     ["alpha", "b&c", "b&c-two", "gamma"]),
    ("sort_key=display_name", ["gamma", "b&c-two", "b&c", "alpha"]),
    ("sort_key=vm_state&sort_dir=asc&sort_key=display_name&sort_dir=desc",
     ["b&c-two", "alpha", "gamma", "b&c"]),
    ("sort_key=launch_index&sort_dir=desc&sort_key=created_at&sort_dir=asc",
     ["b&c-two", "alpha", "b&c", "gamma"]),
    # ignored sort keys (before 2.75) change nothing
    ("sort_key=vcpus&sort_dir=asc", LIVE_P1[::-1]),
])
def test_sorting(world, query, expected):
    assert names(world, query, version="2.74") == expected


def test_locked_sort_key_from_273(world):
    assert names(world, "sort_key=locked&sort_dir=desc&sort_key=uuid&"
                 "sort_dir=desc", version="2.73")[0] == "b&c"
    assert fault(world, "sort_key=vcpus", version="2.75")[0] == 400


def _pages(world, query: str, admin=False) -> list[list[str]]:
    """Follow next links to the end; the pages' names."""
    pages = []
    path = "/v2.1/servers?" + query
    token = "admin:adminproj" if admin else "alice:p1"
    while path:
        resp = world.request("GET", path, token=token, version="2.96")
        assert resp.status_int == 200, resp.text
        pages.append([s["name"] for s in resp.json["servers"]])
        links = resp.json.get("servers_links", [])
        path = None
        if links:
            parsed = urllib.parse.urlsplit(links[0]["href"])
            path = parsed.path + "?" + parsed.query
        assert len(pages) < 10
    return pages


def test_paging_follows_next_links_with_a_filter_holding_ampersand(world):
    # name=b%26c must come back in the link as b%26c, not as name=b&c
    assert _pages(world, "name=b%26c&limit=1") == [["b&c-two"], ["b&c"],
                                                   []]
    resp = get(world, "name=b%26c&limit=1")
    href = resp.json["servers_links"][0]["href"]
    assert "name=b%26c" in href and "limit=1" in href


@pytest.mark.parametrize("query", [
    "limit=2", "limit=1&sort_key=display_name&sort_dir=asc",
    "limit=3&sort_key=vm_state&sort_dir=asc&sort_key=display_name",
    "limit=1&sort_key=host&sort_dir=asc&all_tenants=1",
    "limit=2&sort_key=key_name&sort_dir=desc&all_tenants=1",
])
def test_paging_is_stable_and_complete(world, query):
    admin = "all_tenants" in query
    whole = names(world, query.split("&", 1)[1] if "&" in query else "",
                  admin=admin)
    pages = _pages(world, query, admin=admin)
    assert [n for page in pages for n in page] == whole


def test_marker_of_another_project_is_not_found_for_a_member(world):
    delta = "00000000-0000-4000-8000-000000000005"
    assert fault(world, f"marker={delta}") == (
        400, f"marker [{delta}] not found")
    # an admin listing all projects pages past it
    assert names(world, f"all_tenants=1&marker={delta}", admin=True) == \
        LIVE_P1


def test_limit_zero_and_above_max(world):
    assert names(world, "limit=0") == []
    assert len(names(world, "limit=100000")) == 4


def test_a_page_boundary_holds_while_servers_come_and_go():
    h = build(Harness())
    first = h.request("GET", "/v2.1/servers?limit=2", version="2.96").json
    assert [s["name"] for s in first["servers"]] == ["b&c-two", "gamma"]
    # a newer server arrives and one already listed is deleted
    _row(h, "newest", 30)
    db_instances.soft_delete(h.db, first["servers"][0]["id"])
    link = urllib.parse.urlsplit(first["servers_links"][0]["href"])
    rest = h.request("GET", link.path + "?" + link.query,
                     version="2.96").json
    assert [s["name"] for s in rest["servers"]] == ["b&c", "alpha"]
