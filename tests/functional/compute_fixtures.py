"""Shared set-up for in-process functional tests: SQLite, fake bus, fake driver."""

from __future__ import annotations

import contextlib
import uuid as uuidlib
from typing import Callable

from oslo_config import cfg

from pyct_driver import conf as pyct_conf
from pyct_driver import states
from pyct_driver.api import app as api_app
from pyct_driver.compute.manager import ComputeManager
from pyct_driver.compute.service import ComputeService
from pyct_driver.db import catalog, instances, models
from pyct_driver.db.engine import Database
from pyct_driver.rpc import client as rpc_client
from pyct_driver.rpc import transport as rpc_transport
from pyct_driver.virt.fake import FakeDriver
from tests.waiting import wait_for


class TunnelDriver(FakeDriver):
    """The fake driver with a VXLAN endpoint, recording the forwarding
    entries it is given (tests of compute.tunnels)."""

    def __init__(self, conf, address: str) -> None:
        super().__init__(conf)
        self.address = address
        self.tunnels: dict[str, list] = {}

    def tunnel_address(self) -> str:
        return self.address

    def set_tunnels(self, network_id: str, ports: list) -> None:
        self.tunnels[network_id] = sorted(ports)


def make_conf() -> cfg.ConfigOpts:
    """The global CONF, as services use it (oslo.messaging registers some
    of its options on the global object only), with no config files."""
    conf = pyct_conf.CONF
    rpc_transport.register_opts(conf)
    conf.reset()
    conf([], project="pyct-test", default_config_files=[])
    # a range the privileged tests' bridges never route (tests.services)
    conf.set_override("pool_cidr", "10.246.0.0/16", group="network")
    return conf


def make_db(tmp_path) -> Database:
    db = Database(f"sqlite:///{tmp_path}/pyct.sqlite")
    models.Base.metadata.create_all(db.engine)
    return db


def start_compute(conf, db, host: str, url: str = "fake://") -> ComputeService:
    driver = FakeDriver(conf)
    manager = ComputeManager(db, driver, host, shutdown_timeout=1)
    service = ComputeService(manager, rpc_transport.get_transport(conf, url),
                             report_interval=1, sync_interval=-1)
    service.start()
    return service


def seed_catalog(db, tmp_path, properties=None) -> tuple[dict, dict]:
    flavor = catalog.flavor_create(db, dict(
        flavorid="1", name="m1.tiny", vcpus=1, memory_mb=512, root_gb=1))
    path = tmp_path / "image.tar"
    path.write_bytes(b"not really a tarball")
    image = catalog.image_create(db, dict(
        id=str(uuidlib.uuid4()), name="img", status="active",
        location=str(path), properties=properties or {}))
    return flavor, image


def new_instance(db, flavor, image, host, project="p1") -> dict:
    uuid = str(uuidlib.uuid4())
    return instances.create_many(db, [dict(
        uuid=uuid, name="vm", hostname="vm", project_id=project, user_id="u",
        image_ref=image["id"], flavor_id=flavor["flavorid"],
        flavor={k: flavor[k] for k in ("vcpus", "memory_mb", "root_gb",
                                       "swap", "ephemeral_gb",
                                       "extra_specs")},
        vm_state=states.BUILDING, task_state=states.SCHEDULING, host=host,
        reservation_id="r-1")])[0]


def wait_for_row(db, uuid: str, pred: Callable[[dict], object],
                 timeout: float = 10.0) -> dict:
    """The instance row (deleted ones too) once ``pred(row)`` holds; the
    timeout error shows the last row seen."""
    last: list[dict] = []

    def check():
        last[:] = [instances.get(db, uuid, read_deleted=True)]
        return last[0] if pred(last[0]) else None
    try:
        return wait_for(check, timeout, what=f"instance {uuid}")
    except AssertionError as err:
        raise AssertionError(f"{err}; last row: {last}") from None


@contextlib.contextmanager
def api_with_compute(tmp_path, host: str = "host-a"):
    """(db, compute service, API app): the whole pipeline in process over
    the fake bus, with the m1.tiny flavor and an image; stopped after."""
    conf = make_conf()
    db = make_db(tmp_path)
    seed_catalog(db, tmp_path)
    url = f"fake://{tmp_path.name}/"
    service = start_compute(conf, db, host, url)
    client = rpc_client.ComputeClient(
        conf, rpc_transport.get_transport(conf, url), timeout=10)
    try:
        yield db, service, api_app.create_app(conf, db, client)
    finally:
        service.stop()
        rpc_transport.cleanup()
