"""Fixtures for the service-pipeline tests: real RabbitMQ, real databases.

``rabbit_transport()`` gives each deployment its own RabbitMQ virtual host
(created with ``rabbitmqctl`` and deleted afterwards with everything in it),
so tests never see each other's messages — oslo.messaging names its topic
queues after the topic and host only, so a separate exchange alone would
still share the ``pyct-compute.compute-a`` queue between two runs. Where
``rabbitmqctl`` is not available (a broker elsewhere, named by
``PYCT_TEST_RABBIT_URL``), a unique ``control_exchange`` with auto-deleted
queues is the fallback. ``Pipeline`` is a ``Deployment`` with a migrated
database, the ``m1.tiny`` flavor and an image, plus the waits the tests
share; ``pipeline_factory`` builds them and stops every process at
teardown, before the database and the virtual host are dropped.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import socket
import subprocess
import urllib.parse
import uuid
from typing import Callable, Iterator

import pytest
import sqlalchemy as sa

from tests import dbfixtures
from tests.services import BIN, Deployment, ServiceProcess
from tests.waiting import wait_for

RABBIT_URL = os.environ.get("PYCT_TEST_RABBIT_URL",
                            "rabbit://guest:guest@127.0.0.1:5672/")
BACKENDS = {"postgresql": dbfixtures.make_postgres_url,
            "mariadb": dbfixtures.make_mariadb_url}
FLAVOR_ID = "1"
IMAGE_NAME = "pyct-test-image"

Sections = dict[str, dict[str, object]]


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True,
                   capture_output=True, text=True, timeout=60)


@contextlib.contextmanager
def rabbit_transport() -> Iterator[tuple[str, Sections]]:
    """(transport_url, extra config) of a message bus for one deployment."""
    parsed = urllib.parse.urlsplit(RABBIT_URL)
    try:
        socket.create_connection((parsed.hostname or "127.0.0.1",
                                  parsed.port or 5672), timeout=5).close()
    except OSError as err:
        pytest.fail(f"RabbitMQ is not reachable at {parsed.hostname}:"
                    f"{parsed.port}: {err}. Start it (`make test` does) or "
                    "set PYCT_TEST_RABBIT_URL.", pytrace=False)
    name = f"pyct-test-{uuid.uuid4().hex[:12]}"
    extra: Sections = {"DEFAULT": {"control_exchange": name}}
    local = parsed.hostname in ("127.0.0.1", "localhost", "::1")
    if not (local and shutil.which("rabbitmqctl")):
        extra["oslo_messaging_rabbit"] = {"amqp_auto_delete": True}
        yield RABBIT_URL, extra
        return
    _rabbitmqctl("add_vhost", name)
    try:
        _rabbitmqctl("set_permissions", "-p", name,
                     urllib.parse.unquote(parsed.username or "guest"),
                     ".*", ".*", ".*")
        yield parsed._replace(path="/" + name).geturl(), extra
    finally:
        _rabbitmqctl("delete_vhost", name)


def merge(*parts: Sections | None) -> Sections:
    out: Sections = {}
    for part in parts:
        for section, values in (part or {}).items():
            out.setdefault(section, {}).update(values)
    return out


class Pipeline(Deployment):
    """A deployment whose database is migrated and seeded."""

    def seed(self) -> None:
        """``pyct-manage db sync``, then the flavor and the image (two
        pyct-manage runs side by side: each is mostly interpreter start)."""
        self.manage("db", "sync")
        blob = os.path.join(self.workdir, "image.bin")
        with open(blob, "wb") as f:
            f.write(b"pyct fake image\n" * 64)
        runs = [subprocess.Popen(
            [os.path.join(BIN, "pyct-manage"), "--config-file", self.conf,
             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True) for args in (
                ("flavor", "create", "m1.tiny", "--id", FLAVOR_ID,
                 "--vcpus", "1", "--ram", "512", "--disk", "1"),
                # the fake driver accepts any file; it only checksums it
                ("image", "import", IMAGE_NAME, blob))]
        outs = [run.communicate(timeout=120) for run in runs]
        for run, (out, err) in zip(runs, outs):
            assert run.returncode == 0, f"{run.args}: {out}{err}"
        self.image_id = outs[1][0].strip()

    def start_compute(self, host: str, extra: Sections | None = None
                      ) -> ServiceProcess:
        """Start ``pyct-compute`` on ``host`` and wait until it serves RPC
        (casts sent before its queue exists would be dropped)."""
        proc = self.start("pyct-compute", host=host, extra=extra)
        proc.wait_output(f"compute service on {host} started")
        return proc

    def start_all(self, *hosts: str, extra: Sections | None = None
                  ) -> list[ServiceProcess]:
        """``pyct-api`` and a ``pyct-compute`` per host (``extra`` config
        for the computes), started side by side; returns the compute
        processes once all serve."""
        computes = [self.start("pyct-compute", host=h, extra=extra)
                    for h in hosts]
        self.start("pyct-api")
        for host, proc in zip(hosts, computes):
            proc.wait_output(f"compute service on {host} started")
        return computes

    def stop_all(self) -> None:
        # signal every process first so their shutdowns overlap
        for proc in self.processes:
            if proc.alive():
                proc.proc.send_signal(signal.SIGTERM)
        super().stop_all()

    def engine(self) -> sa.engine.Engine:
        return sa.create_engine(self.db_url, poolclass=sa.pool.NullPool)

    def live_instances(self) -> list[dict]:
        """Rows of instances not soft-deleted, straight from the database."""
        engine = self.engine()
        try:
            with engine.connect() as conn:
                rows = conn.execute(sa.text(
                    "SELECT uuid, host, vm_state, task_state FROM instances "
                    "WHERE deleted = 0")).mappings().all()
                return [dict(r) for r in rows]
        finally:
            engine.dispose()


    def running_vms(self) -> dict[str, int]:
        """Each host's last reported instance count (compute_nodes)."""
        engine = self.engine()
        try:
            with engine.connect() as conn:
                return dict(conn.execute(sa.text(
                    "SELECT host, running_vms FROM compute_nodes")).all())
        finally:
            engine.dispose()


# Integration waits poll real services over HTTP and AMQP: every 200 ms,
# so a wait does not load the API it is watching.
wait_until = functools.partial(wait_for, interval=0.2)


def wait_status(conn, server_id: str, status: str, timeout: float = 30.0,
                stable: bool = True):
    """Poll with the SDK until the server reaches ``status`` (and, with
    ``stable``, no task is in flight); fail early on an unexpected ERROR."""
    def check():
        server = conn.compute.get_server(server_id)
        if server.status == "ERROR" and status != "ERROR":
            raise AssertionError(f"server {server_id} went to ERROR: "
                                 f"{server.fault}")
        if server.status == status and not (stable and server.task_state):
            return server
        return None
    return wait_until(check, timeout, f"{server_id} to be {status}")


def open_pipeline(stack: contextlib.ExitStack, workdir: str,
                  backend: str = "postgresql",
                  extra: Sections | None = None) -> Pipeline:
    """A seeded deployment on ``backend`` ("postgresql", "mariadb" or
    "sqlite") over its own RabbitMQ virtual host; ``stack`` stops its
    processes, then drops its database and virtual host."""
    os.makedirs(workdir)
    if backend == "sqlite":
        db_url = f"sqlite:///{workdir}/pyct.sqlite"
    else:
        db_url = stack.enter_context(BACKENDS[backend]())
    url, bus_extra = stack.enter_context(rabbit_transport())
    dep = Pipeline(workdir, db_url, transport_url=url,
                   extra=merge(bus_extra, extra))
    # registered after the db and vhost, so it runs before they go
    stack.callback(dep.stop_all)
    dep.seed()
    return dep


@pytest.fixture
def pipeline_factory(tmp_path) -> Iterator[Callable[..., Pipeline]]:
    """``make(backend="postgresql", extra=None)`` → a fresh ``Pipeline``;
    everything it started or created is gone after the test."""
    with contextlib.ExitStack() as stack:
        count = iter(range(1000))
        yield lambda backend="postgresql", extra=None: open_pipeline(
            stack, str(tmp_path / f"dep{next(count)}"), backend, extra)


@pytest.fixture(scope="session")
def keystone(tmp_path_factory):
    """A real Keystone from PyPI (cached venv) on loopback, with projects
    A and B (member and reader users each), the admin and pyct's service
    user; ``tests.keystone_fixture``. If Keystone cannot be installed or
    started, the tests that use it fail."""
    from tests import keystone_fixture
    try:
        venv = keystone_fixture.keystone_venv()
        server = keystone_fixture.KeystoneServer(
            str(tmp_path_factory.mktemp("keystone")), venv).start()
    except (RuntimeError, OSError, subprocess.SubprocessError) as err:
        pytest.fail(f"a real Keystone is needed: {err}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()
