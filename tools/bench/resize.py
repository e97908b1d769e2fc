"""Resize and rebuild through ``pyct-all-in-one`` (container driver).

Usage (root): ``.venv/bin/python tools/bench/resize.py [--runs 10]
[--json]``

Starts a real ``pyct-all-in-one`` (SQLite, in-process bus, the container
driver, cgroup parent ``pyct-bench-*``) with ``tests/services.Deployment``,
imports busybox, makes m1.tiny (1 vCPU, 512 MiB, 1 GiB) and m1.wide
(2 vCPUs, 1 GiB RAM, 1 GiB disk: a limits-only resize) and boots one
server. Each run: POST ``resize`` to m1.wide, then GET every 5 ms until
VERIFY_RESIZE with no task (the clock stops there), then POST
``revertResize`` until ACTIVE (timed too). Then ``--runs`` rebuilds onto
the same image, POST ``rebuild`` → ACTIVE. At exit the servers are
deleted, the service and its launcher stopped, and every guest cgroup,
mount, loop device and the temp dir removed.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid as uuid_mod

import api_boot
import report

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, REPO)
from tests.services import Deployment  # noqa: E402


def until(client: api_boot.Client, sid: str, status: str,
          t0: float) -> float:
    while True:
        code, reply = client.call("GET", f"/v2.1/servers/{sid}")
        server = reply.get("server", {})
        if server.get("status") == status and \
                server.get("OS-EXT-STS:task_state") is None:
            return time.perf_counter() - t0
        if server.get("status") == "ERROR" or code != 200:
            raise RuntimeError(f"server {sid}: {code} {reply}")
        if time.perf_counter() - t0 > 120:
            raise RuntimeError(f"server {sid} not {status} after 120 s")
        time.sleep(api_boot.POLL)


def act(client: api_boot.Client, sid: str, body: dict, status: str
        ) -> float:
    t0 = time.perf_counter()
    code, reply = client.call("POST", f"/v2.1/servers/{sid}/action", body)
    if code not in (200, 202, 204):
        raise RuntimeError(f"{list(body)[0]}: {code} {reply}")
    return until(client, sid, status, t0)


def deployment(tag: str) -> tuple[str, str, Deployment]:
    """(temp dir, cgroup parent, all-in-one deployment) of one bench."""
    tmp = tempfile.mkdtemp(prefix=f"pyct-bench-{tag}-")
    parent = f"pyct-bench-{uuid_mod.uuid4().hex[:8]}"
    return tmp, parent, Deployment(
        tmp, f"sqlite:///{tmp}/pyct.sqlite", virt_driver="container",
        extra={"container": {"cgroup_parent": parent}})


def prepare(dep: Deployment) -> str:
    """db sync, the busybox image and m1.tiny; returns the image id."""
    dep.manage("db", "sync")
    image = dep.manage("image", "create-busybox", "busybox").split()[-1]
    dep.manage("flavor", "create", "m1.tiny", "--id", "1", "--vcpus",
               "1", "--ram", "512", "--disk", "1")
    return image


def main() -> None:
    args = report.parser(__doc__.splitlines()[0], 10).parse_args()
    report.interrupt_on_term()
    tmp, parent, dep = deployment("resize")
    client = None
    rows: dict[str, dict] = {}
    try:
        image = prepare(dep)
        dep.manage("flavor", "create", "m1.wide", "--id", "2", "--vcpus",
                   "2", "--ram", "1024", "--disk", "1")
        dep.start("pyct-all-in-one")
        client = api_boot.Client(dep.port)
        sid = api_boot.boot(client, image)["id"]
        act(client, sid, {"resize": {"flavorRef": "2"}}, "VERIFY_RESIZE")
        act(client, sid, {"revertResize": None}, "ACTIVE")  # warm-up
        resize, revert, rebuild = [], [], []
        for _ in range(args.runs):
            resize.append(act(client, sid, {"resize": {"flavorRef": "2"}},
                              "VERIFY_RESIZE"))
            revert.append(act(client, sid, {"revertResize": None},
                              "ACTIVE"))
        for _ in range(args.runs):
            rebuild.append(act(client, sid, {"rebuild": {
                "imageRef": image}}, "ACTIVE"))
        rows = {"resize: POST -> VERIFY_RESIZE": report.summarize(resize),
                "revertResize: POST -> ACTIVE": report.summarize(revert),
                "rebuild: POST -> ACTIVE": report.summarize(rebuild)}
    finally:
        api_boot.teardown_deployment(client, dep, tmp, parent)
    report.emit("resize and rebuild through the API", rows,
                {"poll": f"{api_boot.POLL * 1000:.0f} ms"}, args.json)


if __name__ == "__main__":
    main()
