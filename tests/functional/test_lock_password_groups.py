"""Locks, changePassword, diagnostics and server groups through the whole
pipeline in process: the API app, the fake bus, the compute manager and
the fake driver (which records the password and gives fixed diagnostics).
Also the container driver's password fallback with a scripted guest."""

from __future__ import annotations

import json
import time

import pytest
import webob

from pyct_driver import exception
from pyct_driver.db import instances as db_instances
from pyct_driver.virt import base, diagnostics
from tests.functional import compute_fixtures as fx


@pytest.fixture()
def env(tmp_path):
    with fx.api_with_compute(tmp_path) as env:
        yield env


def call(app, method, path, body=None, token="alice:p1", version="2.73"):
    req = webob.Request.blank(path, method=method)
    req.headers["X-Auth-Token"] = token
    req.headers["OpenStack-API-Version"] = f"compute {version}"
    if body is not None:
        req.body = json.dumps(body).encode()
        req.content_type = "application/json"
    return req.get_response(app)


def _boot(app, db, hints=None) -> str:
    image = call(app, "GET", "/image/v2/images").json["images"][0]["id"]
    body = {"server": {"name": "vm", "imageRef": image, "flavorRef": "1",
                       "networks": "none"}}
    if hints:
        body["os:scheduler_hints"] = hints
    resp = call(app, "POST", "/v2.1/servers", body)
    assert resp.status_int == 202, resp.text
    sid = resp.json["server"]["id"]
    fx.wait_for_row(db, sid, lambda r: r["vm_state"] == "active")
    return sid


def test_password_diagnostics_and_lock_end_to_end(env):
    db, service, app = env
    sid = _boot(app, db)
    action = f"/v2.1/servers/{sid}/action"
    resp = call(app, "POST", action,
                {"changePassword": {"adminPass": "s3cret"}})
    assert resp.status_int == 202, resp.text
    driver = service.manager.driver
    assert driver._instances[sid]["root_password"] == "s3cret"
    assert db_instances.get(db, sid)["task_state"] is None
    resp = call(app, "GET", f"/v2.1/servers/{sid}/diagnostics",
                token="admin:adm", version="2.48")
    assert resp.status_int == 200, resp.text
    diag = resp.json
    assert diag["driver"] == "fake" and diag["state"] == "running"
    assert diag["cpu_details"] == [{"id": 0, "time": 1_000_000_000,
                                    "utilisation": None}]
    assert diag["memory_details"] == {"maximum": 512, "used": 64}
    assert call(app, "POST", action, {"lock": {"locked_reason": "why"}}
                ).status_int == 202
    resp = call(app, "POST", action,
                {"changePassword": {"adminPass": "again"}})
    assert resp.status_int == 409
    assert driver._instances[sid]["root_password"] == "s3cret"
    server = call(app, "GET", f"/v2.1/servers/{sid}").json["server"]
    assert server["locked"] and server["locked_reason"] == "why"


def test_group_members_and_server_groups_field(env):
    db, _service, app = env
    resp = call(app, "POST", "/v2.1/os-server-groups", {"server_group": {
        "name": "g", "policy": "affinity"}}, version="2.64")
    group = resp.json["server_group"]
    sid = _boot(app, db, {"group": group["id"]})
    server = call(app, "GET", f"/v2.1/servers/{sid}",
                  version="2.71").json["server"]
    assert server["server_groups"] == [group["id"]]
    shown = call(app, "GET", f"/v2.1/os-server-groups/{group['id']}",
                 version="2.64").json["server_group"]
    assert shown["members"] == [sid]
    assert call(app, "DELETE", f"/v2.1/servers/{sid}").status_int == 204
    # a deleted server leaves its group
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        members = call(app, "GET", f"/v2.1/os-server-groups/{group['id']}",
                       version="2.64").json["server_group"]["members"]
        if not members:
            break
        time.sleep(0.05)
    assert members == []


class _Session:
    def __init__(self, code, err=b""):
        self.code, self.err, self.fed = code, err, None

    def communicate(self, data, timeout=None):
        self.fed = data
        return self.code, b"", self.err


class _Guest(diagnostics.GuestAdmin):
    """A container driver's GuestAdmin whose guest lacks chpasswd."""

    def __init__(self, missing=True, code=0):
        self.missing, self.code, self.runs = missing, code, []

    def exec_in_guest(self, uuid, argv):
        self.runs.append(argv)
        if argv == ["chpasswd"] and self.missing:
            raise exception.ProcessError(
                reason="exec chpasswd: No such file or directory")
        session = _Session(self.code, b"sed: boom")
        self.last = session
        return session


def _spec():
    return base.bare_spec("u1")


def test_container_password_falls_back_to_the_guests_sed():
    guest = _Guest()
    guest.set_admin_password(_spec(), "pw")
    assert guest.runs[0] == ["chpasswd"]
    assert guest.runs[1][:2] == ["sh", "-c"]
    assert "/etc/shadow" in guest.runs[1][2]
    # the hash goes on stdin, never on a command line
    assert guest.last.fed.startswith(b"$6$")
    assert "pw" not in guest.runs[1][2]
    failing = _Guest(code=1)
    with pytest.raises(exception.Conflict):
        failing.set_admin_password(_spec(), "pw")
    with pytest.raises(exception.Invalid):
        _Guest(missing=False).set_admin_password(_spec(), "a\nb")
    plain = _Guest(missing=False)
    plain.set_admin_password(_spec(), "pw")
    assert plain.runs == [["chpasswd"]] and plain.last.fed == b"root:pw\n"
