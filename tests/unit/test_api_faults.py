"""Errors that don't leak: a real database failure answers a 500 that
carries a generic message and the request id, never the driver's text,
in the shape of the API family asked (Nova, Neutron, Glance); the log has
the full error with its traceback under the same request id. Each
family's 4xx answers keep their service's shape too."""

from __future__ import annotations

import logging
import re

import pytest
import sqlalchemy as sa
import webob

from pyct_driver import exception
from pyct_driver.api import faults
from pyct_driver.db.engine import Database
from tests.unit.test_api_app import Harness

# what a database failure's own text is made of
_DRIVER_TEXT = re.compile(
    r"sqlite|psycopg|pymysql|OperationalError|ProgrammingError|"
    r"DatabaseError|SELECT|no such table|does not exist|doesn't exist|"
    r"\bFROM\b|\[SQL|connection refused|not a database|\(Background",
    re.I)

_FAMILIES = [
    # (path, table its listing reads, how the body says the error)
    ("/v2.1/flavors", "flavors",
     lambda body: body["computeFault"]["message"]),
    ("/networking/v2.0/networks", "networks",
     lambda body: body["NeutronError"]["message"]),
    ("/image/v2/images", "images", lambda body: body["message"]),
]


def _drop(h: Harness, table: str) -> None:
    with h.db.engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE {table}")


def _assert_hidden(resp, table: str, message: str, caplog) -> None:
    req_id = resp.headers["x-openstack-request-id"]
    assert resp.status_int == 500
    assert not _DRIVER_TEXT.search(resp.text), resp.text
    assert not re.search(rf"\b{table}\b", resp.text), resp.text
    assert req_id in message
    logged = [r for r in caplog.records
              if r.levelno == logging.ERROR and req_id in r.getMessage()]
    assert len(logged) == 1, caplog.text
    assert logged[0].exc_info is not None
    assert "Traceback" in caplog.text


@pytest.mark.parametrize("path,table,message_of", _FAMILIES)
def test_dropped_table_is_a_generic_500(path, table, message_of, caplog):
    h = Harness()
    _drop(h, table)
    with caplog.at_level(logging.ERROR, logger=faults.__name__):
        resp = h.request("GET", path,
                         headers={"Accept": "application/json"})
    message = message_of(resp.json)
    assert message.startswith(
        "Request Failed: internal server error" if "Neutron" in resp.text
        else faults.GENERIC_5XX)
    _assert_hidden(resp, table, message, caplog)
    # the full error is the operator's: driver text, SQL and table
    assert f"no such table: {table}" in caplog.text
    assert "sqlite3.OperationalError" in caplog.text


def test_database_file_that_is_no_database_is_a_generic_500(
        tmp_path, caplog):
    path = tmp_path / "pyct.sqlite"
    h = Harness(db_url=f"sqlite:///{path}")
    h.db.dispose()
    path.write_bytes(b"this is not a database at all\n" * 200)
    with caplog.at_level(logging.ERROR, logger=faults.__name__):
        resp = h.request("GET", "/v2.1/servers/detail")
    _assert_hidden(resp, "instances", resp.json["computeFault"]["message"],
                   caplog)
    assert resp.json["computeFault"]["code"] == 500
    assert "file is not a database" in caplog.text


def test_unreachable_postgresql_is_a_503_to_retry(caplog):
    h = Harness()
    # a real psycopg2 connection failure: nothing listens on port 1
    broken = Database("postgresql+psycopg2://pyct:secret-pw@127.0.0.1:1/"
                      "pyct")
    h.db._sessions = broken._sessions
    with caplog.at_level(logging.WARNING, logger=faults.__name__):
        resp = h.request("GET", "/v2.1/flavors")
    assert resp.status_int == 503
    assert resp.headers["Retry-After"] == "5"
    assert resp.json == {"serviceUnavailable": {
        "code": 503, "message": "The database is unavailable; nothing "
                                "was changed. Retry later."}}
    assert "secret-pw" not in resp.text and "5432" not in resp.text
    assert "127.0.0.1" not in resp.text
    assert "psycopg2.OperationalError" in caplog.text
    broken.dispose()


@pytest.mark.parametrize("path,table,message_of", _FAMILIES)
def test_unexpected_exception_is_hidden_in_every_family(
        path, table, message_of, monkeypatch, caplog):
    h = Harness()

    def boom(*_a, **_k):
        raise RuntimeError("secret internal detail")
    # every listing reads through a session, one way or another
    for name in ("execute", "scalars", "scalar", "query", "get"):
        monkeypatch.setattr(sa.orm.Session, name, boom)
    with caplog.at_level(logging.ERROR, logger=faults.__name__):
        resp = h.request("GET", path,
                         headers={"Accept": "application/json"})
    assert "secret" not in resp.text
    _assert_hidden(resp, table, message_of(resp.json), caplog)
    assert "secret internal detail" in caplog.text


def test_safe_server_errors_keep_their_words():
    resp = faults.from_exception(exception.NoValidHost(
        reason="There are not enough hosts available."), "req-1")
    assert resp.status_int == 500
    assert resp.json == {"computeFault": {"code": 500, "message": (
        "No valid host was found. There are not enough hosts available.")}}
    resp = faults.from_exception(exception.DBError(
        reason="(sqlite3.OperationalError) no such table: x"), "req-2")
    assert resp.json == {"computeFault": {"code": 500, "message": (
        f"{faults.GENERIC_5XX} Request ID: req-2")}}


def test_neutron_types_are_neutrons():
    def kind(err):
        resp = faults.neutron_from_exception(err, "req-1")
        body = resp.json["NeutronError"]
        assert set(body) == {"type", "message", "detail"}
        return resp.status_int, body["type"]
    assert kind(exception.Invalid("bad")) == (400, "BadRequest")
    assert kind(exception.Forbidden("no")) == (403, "Forbidden")
    assert kind(exception.NotFound("gone")) == (404, "NotFound")
    assert kind(exception.PortNotFound(port_id="p")) == (404, "PortNotFound")
    assert kind(exception.Conflict("busy")) == (409, "Conflict")
    assert kind(exception.PortInUse(port_id="p")) == (409, "PortInUse")
    assert kind(exception.TooLarge()) == (413, "HTTPRequestEntityTooLarge")
    assert kind(exception.DBError(reason="x")) == (
        500, "HTTPInternalServerError")
    assert kind(exception.RPCError(reason="x")) == (
        500, "HTTPInternalServerError")


def test_neutron_routes_answer_neutron_errors():
    h = Harness()
    resp = h.request("GET", "/networking/v2.0/ports/nope")
    assert resp.status_int == 404
    assert resp.json["NeutronError"]["type"] == "NotFound"
    resp = h.request("GET", "/networking/v2.0/quotas/other-project")
    assert resp.status_int == 403
    assert resp.json["NeutronError"]["type"] == "Forbidden"


def test_glance_routes_answer_glance_errors():
    h = Harness()
    json_ = {"Accept": "application/json"}

    def glance(resp, status: int, title: str) -> str:
        assert resp.status_int == status, resp.text
        body = resp.json
        assert set(body) == {"message", "code", "title"}
        assert body["code"] == f"{status} {title}"
        assert body["title"] == title
        return body["message"]
    assert "sideways" in glance(h.request(
        "GET", "/image/v2/images?sort_dir=sideways", headers=json_),
        400, "Bad Request")
    assert "nope" in glance(h.request(
        "GET", "/image/v2/images/nope", headers=json_), 404, "Not Found")
    assert h.image["id"] in glance(h.admin(
        "POST", "/image/v2/images", {"id": h.image["id"], "name": "x"},
        headers=json_), 409, "Conflict")


def test_errors_outside_the_router_keep_the_family_shape():
    err = RuntimeError("secret")
    nova = faults.for_path("/v2.1/servers", err, "req-1")
    assert nova.json["computeFault"]["message"].endswith("req-1")
    neutron = faults.for_path("/networking/v2.0/ports", err, "req-2")
    assert neutron.json["NeutronError"]["message"].endswith("req-2")
    glance = webob.Request.blank("/", headers={
        "Accept": "application/json"}).get_response(
        faults.for_path("/image/v2/images", err, "req-3"))
    assert glance.status_int == 500
    assert glance.json["message"].startswith(faults.GENERIC_5XX)
    assert "req-3" in glance.json["message"]
    assert all("secret" not in r.text for r in (nova, neutron, glance))
