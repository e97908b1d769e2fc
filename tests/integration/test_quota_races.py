"""Quota enforcement under concurrency on the real PostgreSQL and MariaDB.

The API app runs in this process over a freshly migrated database on each
server (dropped afterwards); 16 threads race to create servers or key
pairs for one project whose quota is small. Every create either makes
its servers or is refused with Nova's 403 -- never a 500 -- and the end
state is exactly the quota: usage never passes it, and since the demand
is larger, it reaches it -- also through a real pyct-api process with a
compute service. ``min_count`` is all-or-nothing: too little
quota (403) or too few hosts (NoValidHost) leave no row behind.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
import sqlalchemy as sa
import webob
from oslo_config import cfg

from pyct_driver import conf as pyct_conf
from pyct_driver.api import app as api_app
from pyct_driver.api import flavors, images
from pyct_driver.db import migration, services
from pyct_driver.db.engine import Database
from tests import dbfixtures
from tests.integration.conftest import FLAVOR_ID, wait_until
from tests.unit.test_api_app import FakeCompute

BACKENDS = {"postgresql": dbfixtures.make_postgres_url,
            "mariadb": dbfixtures.make_mariadb_url}
THREADS = 16
PER_THREAD = 3


class App:
    """The WSGI app over one real database, seeded with a flavor (1 vCPU,
    512 MB), an image and hosts."""

    def __init__(self, url: str, hosts: int = 1, **quota) -> None:
        conf = cfg.ConfigOpts()
        for group, opts in pyct_conf.list_opts():
            conf.register_opts(opts, group=group)
        conf([], default_config_files=[])
        for name, value in quota.items():
            conf.set_override(name, value, group="quota")
        conf.set_override("reserved_host_memory_mb", 0, group="compute")
        self.db = Database(url, max_pool_size=THREADS + 4)
        self.app = api_app.create_app(conf, self.db, FakeCompute())
        self.image = images.register_image(self.db, "img", "/nonexistent",
                                           {"disk_format": "raw"})
        flavors.create_flavor(self.db, "m1", 1, 512, 1, flavorid="1")
        for index in range(hosts):
            host = f"node{index}"
            services.heartbeat(self.db, host, "pyct-compute", "pyct-compute")
            services.compute_node_report(self.db, host, {
                "vcpus": 1000, "memory_mb": 1 << 30, "local_gb": 100000,
                "cpu_allocation_ratio": 1.0, "ram_allocation_ratio": 1.0,
                "disk_allocation_ratio": 1.0})

    def request(self, method: str, path: str, body=None,
                token: str = "alice:p1") -> webob.Response:
        req = webob.Request.blank(path, method=method)
        req.headers["X-Auth-Token"] = token
        req.headers["OpenStack-API-Version"] = "compute 2.37"
        if body is not None:
            req.json_body = body
        return req.get_response(self.app)

    def boot(self, min_count: int = 1, max_count: int = 1,
             name: str = "vm") -> webob.Response:
        return self.request("POST", "/v2.1/servers", {"server": {
            "name": name, "imageRef": self.image["id"], "flavorRef": "1",
            "networks": "none", "min_count": min_count,
            "max_count": max_count}})

    def count(self, sql: str) -> int:
        with self.db.engine.connect() as conn:
            return conn.execute(sa.text(sql)).scalar_one()


@pytest.fixture(params=sorted(BACKENDS))
def url(request):
    with BACKENDS[request.param]() as url:
        migration.upgrade(url)
        yield url


def _race(work) -> list[webob.Response]:
    """Run ``work(thread, attempt)`` PER_THREAD times in each of THREADS
    threads, all released at once; the responses."""
    out: list[webob.Response] = []
    lock = threading.Lock()
    start = threading.Barrier(THREADS)

    def run(thread: int) -> None:
        start.wait()
        for attempt in range(PER_THREAD):
            resp = work(thread, attempt)
            with lock:
                out.append(resp)
    threads = [threading.Thread(target=run, args=(i,))
               for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert len(out) == THREADS * PER_THREAD
    return out


def _refused(resp: webob.Response, resource: str) -> bool:
    return resp.status_int == 403 and resp.json["forbidden"][
        "message"].startswith(f"Quota exceeded for {resource}: Requested ")


def test_server_creates_race_to_exactly_the_instance_quota(url):
    app = App(url, instances=5)
    try:
        results = _race(lambda _t, _a: app.boot())
        made = [r for r in results if r.status_int == 202]
        assert all(r.status_int == 202 or _refused(r, "instances")
                   for r in results), {r.status_int for r in results}
        assert len(made) == 5
        assert app.count("SELECT count(*) FROM instances "
                         "WHERE deleted = 0") == 5
        assert app.count("SELECT count(*) FROM instance_actions") == 5
        usage = app.request("GET", "/v2.1/limits").json["limits"]["absolute"]
        assert usage["totalInstancesUsed"] == usage["maxTotalInstances"] == 5
    finally:
        app.db.dispose()


def test_multi_creates_race_to_exactly_the_ram_quota(url):
    # 5 servers' worth of RAM; each request asks for 1 to 2 servers
    app = App(url, ram=5 * 512, instances=-1, cores=-1)
    try:
        results = _race(lambda _t, _a: app.boot(1, 2))
        assert all(r.status_int == 202 or _refused(r, "ram")
                   for r in results), {r.status_int for r in results}
        assert app.count("SELECT count(*) FROM instances "
                         "WHERE deleted = 0") == 5
        assert app.count("SELECT count(*) FROM instance_actions") == 5
    finally:
        app.db.dispose()


def test_keypair_creates_race_to_exactly_the_key_pair_quota(url):
    app = App(url, key_pairs=4)
    # imported, not generated: key generation would spread the racers out
    public = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH,
        serialization.PublicFormat.OpenSSH).decode()
    try:
        results = _race(lambda t, a: app.request(
            "POST", "/v2.1/os-keypairs",
            {"keypair": {"name": f"k{t}-{a}", "public_key": public}}))
        assert {r.status_int for r in results} == {201, 403}
        assert all(r.json["forbidden"]["message"]
                   == "Quota exceeded, too many key pairs."
                   for r in results if r.status_int == 403)
        assert sum(r.status_int == 201 for r in results) == 4
        assert app.count("SELECT count(*) FROM key_pairs "
                         "WHERE user_id = 'alice'") == 4
    finally:
        app.db.dispose()


def test_min_count_is_all_or_nothing(url):
    app = App(url, instances=4)
    try:
        assert app.boot(1, 1, name="first").status_int == 202
        # 3 more fit; min_count 4 does not: 403, nothing made
        resp = app.boot(4, 6)
        assert resp.status_int == 403
        assert resp.json["forbidden"]["message"] == (
            "Quota exceeded for instances: Requested 4-6, but already "
            "used 1 of 4 instances")
        assert app.count("SELECT count(*) FROM instances") == 1
        # between min and max: as many as fit
        assert app.boot(2, 6).status_int == 202
        assert app.count("SELECT count(*) FROM instances "
                         "WHERE deleted = 0") == 4
    finally:
        app.db.dispose()


def test_min_count_beyond_the_hosts_is_novalidhost_and_nothing(url):
    app = App(url, hosts=0, instances=-1, cores=-1, ram=-1)
    try:
        # one host with room for exactly 3 of the 512 MB servers
        services.heartbeat(app.db, "small", "pyct-compute", "pyct-compute")
        services.compute_node_report(app.db, "small", {
            "vcpus": 64, "memory_mb": 3 * 512, "local_gb": 1000,
            "cpu_allocation_ratio": 1.0, "ram_allocation_ratio": 1.0,
            "disk_allocation_ratio": 1.0})
        resp = app.boot(4, 10)
        assert resp.status_int == 500
        assert resp.json["computeFault"]["message"] == (
            "No valid host was found. There are not enough hosts "
            "available.")
        for table in ("instances", "instance_actions", "instance_faults",
                      "ports"):
            assert app.count(f"SELECT count(*) FROM {table}") == 0
        # min_count 2 of max 10: the 3 that fit are made, all placed
        assert app.boot(2, 10).status_int == 202
        assert app.count("SELECT count(*) FROM instances WHERE host = "
                         "'small' AND vm_state = 'building'") == 3
        assert app.count("SELECT count(*) FROM instances") == 3
    finally:
        app.db.dispose()


def test_quota_update_below_usage_is_refused_unless_forced(url):
    app = App(url, instances=5)
    try:
        assert app.boot(2, 2).status_int == 202
        admin = "admin:adminproj"
        resp = app.request("PUT", "/v2.1/os-quota-sets/p1",
                           {"quota_set": {"instances": 1}}, token=admin)
        assert resp.status_int == 400
        assert app.count("SELECT count(*) FROM quotas") == 0
        resp = app.request("PUT", "/v2.1/os-quota-sets/p1", {
            "quota_set": {"instances": 1, "force": True}}, token=admin)
        assert resp.status_int == 200
        assert resp.json["quota_set"]["instances"] == 1
        refused = app.boot()
        assert refused.json["forbidden"]["message"] == (
            "Quota exceeded for instances: Requested 1, but already used "
            "2 of 1 instances")
    finally:
        app.db.dispose()


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_real_api_process_race(pipeline_factory, backend):
    """The same race through a real pyct-api process (its worker threads,
    its connection pool) with a real compute service over RabbitMQ: 16
    clients x 3 creates against instances = 6; then the servers go
    ACTIVE and the limits say 6 of 6."""
    dep = pipeline_factory(backend, extra={"quota": {"instances": 6}})
    dep.start_all("c1")
    body = json.dumps({"server": {
        "name": "race", "imageRef": dep.image_id, "flavorRef": FLAVOR_ID,
        "networks": "none"}}).encode()

    def work(_thread: int, _attempt: int):
        req = urllib.request.Request(
            f"{dep.endpoint}/v2.1/servers", data=body, method="POST",
            headers={"X-Auth-Token": "demo:demo",
                     "Content-Type": "application/json",
                     "OpenStack-API-Version": "compute 2.37"})
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                return resp.status, None
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())
    results = _race(work)
    assert {status for status, _ in results} == {202, 403}
    assert all(fault["forbidden"]["message"].startswith(
        "Quota exceeded for instances: Requested 1, but already used ")
        for status, fault in results if status == 403)
    assert sum(status == 202 for status, _ in results) == 6
    assert len(dep.live_instances()) == 6
    conn = dep.sdk_connection("user")
    wait_until(lambda: all(s.status == "ACTIVE"
                           for s in conn.compute.servers()), 60,
               "the servers to be ACTIVE")
    limits = conn.get_compute_limits()
    assert (limits.instances_used, limits.instances) == (6, 6)
