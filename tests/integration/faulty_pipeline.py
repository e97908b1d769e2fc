"""Deployments whose RabbitMQ or PostgreSQL is reached through a
``tests.faultproxy.FaultProxy``, for the fault tests.

``open_faulty(stack, workdir, bus=True, db=False)`` is
``conftest.open_pipeline`` with the message bus and/or the database URL
pointed at a proxy in front of the real service (seeding goes straight
to the database); it returns the deployment and its proxies.
``DriverCalls`` counts the fake driver's calls from its call log
(``[fake_driver] call_log``), and ``api_request`` sends one raw HTTP
request to the API (a fault's status, headers and body are what these
tests check, where the SDK would retry or raise).
"""

from __future__ import annotations

import collections
import contextlib
import os
import urllib.parse

import requests
import sqlalchemy as sa

from tests.faultproxy import FaultProxy
from tests.integration.conftest import (BACKENDS, Pipeline, Sections, merge,
                                        rabbit_transport)

# fast reconnects and a fast-failing send: the faults here last seconds
BUS_OPTIONS: Sections = {
    "DEFAULT": {"rpc_send_retries": 4, "rpc_response_timeout": 15},
    "oslo_messaging_rabbit": {"rabbit_retry_interval": 1,
                              "rabbit_retry_backoff": 1,
                              "rabbit_interval_max": 2,
                              "heartbeat_timeout_threshold": 10},
}


def _via(url: str, port: int) -> str:
    """``url`` with its port replaced by the proxy's."""
    parsed = urllib.parse.urlsplit(url)
    netloc = parsed.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    netloc = f"{netloc[0]}@{host}" if len(netloc) == 2 else host
    return parsed._replace(netloc=netloc).geturl()


class Faulty:
    """A seeded deployment and the proxies in front of its services."""

    def __init__(self, dep: Pipeline, bus: FaultProxy | None,
                 db: FaultProxy | None, call_log: str) -> None:
        self.dep = dep
        self.bus = bus
        self.db = db
        self.call_log = call_log


def open_faulty(stack: contextlib.ExitStack, workdir: str, bus: bool = True,
                db: bool = False, extra: Sections | None = None,
                bus_options: Sections | None = BUS_OPTIONS) -> Faulty:
    """See the module's docstring; ``bus_options`` None keeps
    oslo.messaging's own reconnect timing."""
    os.makedirs(workdir)
    real_db = stack.enter_context(BACKENDS["postgresql"]())
    url, bus_extra = stack.enter_context(rabbit_transport())
    bus_proxy = db_proxy = None
    if bus:
        bus_proxy = stack.enter_context(FaultProxy(
            urllib.parse.urlsplit(url).port or 5672))
        url = _via(url, bus_proxy.port)
    db_url = real_db
    if db:
        db_proxy = stack.enter_context(FaultProxy(
            sa.engine.make_url(real_db).port or 5432))
        db_url = sa.engine.make_url(real_db).set(
            port=db_proxy.port).render_as_string(hide_password=False)
    call_log = os.path.join(workdir, "driver-calls.log")
    dep = Pipeline(workdir, db_url, transport_url=url, extra=merge(
        bus_extra, bus_options, {"fake_driver": {"call_log": call_log}},
        extra))
    dep.real_db_url = real_db
    stack.callback(dep.stop_all)  # before the proxies and the db go
    dep.seed()
    return Faulty(dep, bus_proxy, db_proxy, call_log)


class DriverCalls:
    """The fake driver's calls so far: ``count("spawn", uuid)``."""

    def __init__(self, path: str) -> None:
        self.calls: collections.Counter = collections.Counter()
        if os.path.exists(path):
            with open(path) as f:
                for line in f:
                    call, uuid = line.split()
                    self.calls[call, uuid] += 1

    def count(self, call: str, uuid: str) -> int:
        return self.calls[call, uuid]


def api_request(dep: Pipeline, method: str, path: str,
                body: dict | None = None, token: str = "demo:demo",
                timeout: float = 60) -> requests.Response:
    return requests.request(
        method, f"{dep.endpoint}/v2.1{path}", json=body, timeout=timeout,
        headers={"X-Auth-Token": token,
                 "X-OpenStack-Nova-API-Version": "2.37"})


def live_rows(dep: Pipeline, sql: str) -> list[dict]:
    """Rows of ``sql`` read straight from the real database."""
    engine = sa.create_engine(getattr(dep, "real_db_url", dep.db_url),
                             poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.text(sql)).mappings()]
    finally:
        engine.dispose()
