"""What a move between hosts holds on each of them, in process (API →
fake bus → two compute services, SQLite).

While a server waits in VERIFY_RESIZE on the destination, its source
keeps the stopped copy a revert starts again, so the source's room for
the old flavor must stay taken until the move is confirmed or reverted
(Nova's placement keeps the migration's allocation on the source); and
while the row is still on the source, the destination already holds the
new flavor. The hypervisors API, the scheduler and the compute report
read the same ``usage_by_host``.
"""

from __future__ import annotations

import sqlalchemy as sa

from pyct_driver import states
from pyct_driver.db import catalog, instances
from tests.functional.test_migrate_hosts import (  # noqa: F401 (fixture)
    act, boot, call, env, idle)


def _used(db, host, key="memory_mb"):
    return instances.usage_by_host(db).get(host, {}).get(key, 0)


def _hypervisor(app, host):
    found = call(app, "GET", "/v2.1/os-hypervisors/detail",
                 version="2.1").json["hypervisors"]
    return next(h for h in found if h["hypervisor_hostname"] == host)


def _resize_away(env):
    """A server of m1.tiny (512 MiB) on host-a resized to m1.small (1024
    MiB, 2 vCPUs), which host-a has no room for: it moves to host-b."""
    db, svcs, app = env
    sid = boot(app, db)
    with db.session() as session:
        session.execute(sa.text("UPDATE compute_nodes SET memory_mb = 1100"
                                " WHERE host = 'host-a'"))
    resp = act(app, sid, {"resize": {"flavorRef": "2"}})
    assert resp.status_int == 202, resp.text
    row = idle(db, sid, states.RESIZED)
    assert row["host"] == "host-b"
    return sid


def test_source_holds_the_old_flavor_until_confirmed(env):
    db, svcs, app = env
    sid = _resize_away(env)
    # VERIFY_RESIZE: host-a still holds m1.tiny, host-b m1.small
    assert (_used(db, "host-a"), _used(db, "host-b")) == (512, 1024)
    assert (_used(db, "host-a", "vcpus"), _used(db, "host-b", "vcpus")) \
        == (1, 2)
    shown = _hypervisor(app, "host-a")["memory_mb_used"]
    # so a new server asked onto host-a finds no room there (1100 MiB
    # less 512 reserved less 512 held), where it fit before this count
    image = catalog.image_list(db)[0]
    resp = call(app, "POST", "/v2.1/servers", {"server": {
        "name": "late", "imageRef": image["id"], "flavorRef": "1",
        "networks": "none", "host": "host-a"}}, version="2.74")
    assert resp.status_int == 202, resp.text
    late = resp.json["server"]["id"]
    assert idle(db, late, states.ERROR)["host"] is None
    assert act(app, sid, {"confirmResize": None}).status_int == 204
    idle(db, sid, states.ACTIVE)
    assert (_used(db, "host-a"), _used(db, "host-b")) == (0, 1024)
    assert shown - _hypervisor(app, "host-a")["memory_mb_used"] == 512


def test_revert_finds_its_room_and_releases_the_destination(env):
    db, svcs, app = env
    sid = _resize_away(env)
    assert act(app, sid, {"revertResize": None}).status_int == 202
    row = idle(db, sid, states.ACTIVE)
    assert (row["host"], row["flavor_id"]) == ("host-a", "1")
    # counted once on the source, nothing left on the destination
    assert (_used(db, "host-a"), _used(db, "host-b")) == (512, 0)


def test_destination_holds_the_new_flavor_before_it_takes_the_row(env):
    db, svcs, app = env
    sid = boot(app, db)
    svcs["host-a"].stop()  # the move is accepted, never started
    assert act(app, sid, {"migrate": {"host": "host-b"}}).status_int == 202
    assert instances.get(db, sid)["task_state"] == states.RESIZE_PREP
    assert (_used(db, "host-a"), _used(db, "host-b")) == (512, 512)
