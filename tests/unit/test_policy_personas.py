"""Persona matrix: every route as admin, project member, project reader and
another project's member, through the real WSGI app (SQLite, recording
fake compute client: ``test_api_app.Harness``).

Each call runs against a fresh world: a project owning an ACTIVE server
with a port on its default network, an instance action, a shared image
with a member, a private flavor it may use, a flavor extra spec, and a key
pair ``kp`` for every persona's user. The expected statuses live in
``policy_matrix``; a refused call (4xx) must leave every database row and
the compute client's calls exactly as they were, and another project
never sees the world's ids, not even in a list.
"""

from __future__ import annotations

import json
import re

import pytest
import sqlalchemy as sa

from pyct_driver import states
from pyct_driver.api import (flavors, floating_ips, images, networking,
                             secgroups, ssh_keys)
from pyct_driver.api.routes import COMPUTE_ROUTES, IMAGE_ROUTES
from pyct_driver.db import actions as db_actions
from pyct_driver.db import catalog, models
from pyct_driver.db import image_members as db_members
from pyct_driver.db import instances as db_instances
from pyct_driver.db import networks as db_networks
from tests.unit import policy_matrix as pm
from tests.unit.test_api_app import Harness

# Nova's project ids are hex: /v2.1/{project_id}/ must be one
PROJECT, OTHER, ADMIN_PROJECT = "c0ffee01", "beef02", "ad0001"
TOKENS = {"admin": f"admin:{ADMIN_PROJECT}", "member": f"alice:{PROJECT}",
          "reader": f"reader:{PROJECT}", "other": f"bob:{OTHER}"}
PROJECTS = {"admin": ADMIN_PROJECT, "member": PROJECT, "reader": PROJECT,
            "other": OTHER}
# one key for every world: generating RSA keys would take most of the time
_PUBLIC_KEY = ssh_keys.generate(ssh_keys.SSH, "matrix")[1]
# ids of the world's project-owned things another project must not see
_PRIVATE = ("server", "port", "network", "subnet", "image")


def _routes() -> set[tuple[str, str, str]]:
    return ({(pm.COMPUTE, m, p) for m, p, _ in COMPUTE_ROUTES}
            | {(pm.IMAGE, m, p) for m, p, _ in IMAGE_ROUTES}
            | {(pm.NETWORK, m, p) for m, p, _ in networking.ROUTES
               + secgroups.ROUTES + floating_ips.ROUTES})


def build_world() -> tuple[Harness, dict]:
    h = Harness(network__floating_ip_range=pm.FLOATING_RANGE)
    h.add_host()
    server = h.boot("vm", token=TOKENS["member"], networks="auto")
    uuid = server["id"]
    db_instances.update(h.db, uuid, {
        "vm_state": states.ACTIVE, "task_state": None, "host": "node1",
        "power_state": 1})
    port = db_networks.list_ports(h.db, instance_uuids=[uuid])[0]
    net = db_networks.list_networks(h.db, project_id=PROJECT)[0]
    for token in TOKENS.values():
        resp = h.request("POST", "/v2.1/os-keypairs",
                         {"keypair": {"name": "kp",
                                      "public_key": _PUBLIC_KEY}},
                         token=token)
        assert resp.status_int == 200, resp.text
    flavors.create_flavor(h.db, "private", 1, 512, 1, flavorid="private",
                          is_public=False)
    catalog.flavor_access_add(h.db, "private", PROJECT)
    catalog.flavor_extra_specs_set(h.db, "1", {"quota:cpu_shares": "1024"})
    image = images.register_image(h.db, "owned", "/nonexistent", {
        "owner": PROJECT, "visibility": "shared", "disk_format": "raw"})
    db_members.member_create(h.db, image["id"], "e3e3", 128)
    world = {
        "server": uuid, "port": port["id"],
        "request_id": db_actions.action_list(h.db, uuid)[0]["request_id"],
        "flavor": "1", "private_flavor": "private",
        "spec_key": "quota:cpu_shares", "keypair": "kp",
        "image": image["id"], "image_member": "e3e3",
        "public_image": h.image["id"], "network": net["id"],
        "subnet": net["subnet_id"], "member_project": PROJECT}
    h.compute.calls.clear()
    return h, world


def snapshot(h: Harness) -> dict:
    """Every row of every table, and the compute client's calls."""
    with h.db.engine.connect() as conn:
        rows = {t.name: sorted(repr(r) for r in conn.execute(
            sa.select(t)).all())
            for t in models.Base.metadata.sorted_tables}
    return {"rows": rows, "calls": list(h.compute.calls)}


def _fill(text: str, values: dict) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], text)


def _cases():
    for key in sorted(pm.MATRIX):
        for index, case in enumerate(pm.MATRIX[key]):
            for persona in pm.PERSONAS:
                yield pytest.param(key, case, persona,
                                   id=f"{key[1]} {key[0]}/{key[2]} "
                                      f"#{index} {persona}")


def test_every_route_has_a_matrix_entry():
    routes = _routes()
    missing = sorted(routes - set(pm.MATRIX))
    assert not missing, (
        f"routes without a persona matrix entry in "
        f"tests/unit/policy_matrix.py: {missing}")
    assert not sorted(set(pm.MATRIX) - routes), "entries of no route"
    assert all(pm.MATRIX[k] for k in pm.MATRIX)


@pytest.mark.parametrize("key,case,persona", list(_cases()))
def test_persona(key, case, persona):
    h, world = build_world()
    if case.setup is not None:
        world.update(case.setup(h, world))
        h.compute.calls.clear()
    values = {**world, "project": PROJECTS[persona]}
    raw = None
    if case.body is not None:
        raw = _fill(json.dumps(case.body), values).encode()
    before = snapshot(h)
    resp = h.request(key[1], _fill(case.path, values), raw=raw,
                     token=TOKENS[persona], version=case.version,
                     headers=dict(case.headers))
    expected = case.expect[pm.PERSONAS.index(persona)]
    assert resp.status_int == expected, (persona, resp.text)
    if expected >= 400:
        assert snapshot(h) == before, "a refused call changed something"
    if persona == "other" and expected < 400:
        for name in _PRIVATE:
            assert world[name] not in resp.text, (name, resp.text)
