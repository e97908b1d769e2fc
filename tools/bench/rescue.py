"""Rescue, unrescue, suspend and resume through ``pyct-all-in-one``.

Usage (root): ``.venv/bin/python tools/bench/rescue.py [--runs 10]
[--json]``

Starts a real ``pyct-all-in-one`` (SQLite, in-process bus, the container
driver, cgroup parent ``pyct-bench-*``) with ``tests/services.Deployment``,
imports busybox, makes m1.tiny (1 vCPU, 512 MiB, 1 GiB) and boots one
server. Each run: POST ``rescue`` (default image: its own), then GET
every 5 ms until RESCUE with no task (the clock stops there: the guest
was shut down, the rescue root made, the guest booted from it with its
root at /mnt and root's password set inside it), then POST ``unrescue``
until ACTIVE (rescue guest stopped, its root deleted, the guest booted
from its own root). Then ``--runs`` suspends (→ SUSPENDED) and resumes
(→ ACTIVE). At exit the server is deleted, the service and its launcher
stopped, and every guest cgroup, mount, loop device and the temp dir
removed.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid as uuid_mod

import api_boot
import report
from resize import until

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, REPO)
from tests.services import Deployment  # noqa: E402


def act(client: api_boot.Client, sid: str, body: dict, status: str
        ) -> float:
    t0 = time.perf_counter()
    code, reply = client.call("POST", f"/v2.1/servers/{sid}/action", body)
    if code not in (200, 202):
        raise RuntimeError(f"{list(body)[0]}: {code} {reply}")
    return until(client, sid, status, t0)


def main() -> None:
    args = report.parser(__doc__.splitlines()[0], 10).parse_args()
    report.interrupt_on_term()
    tmp = tempfile.mkdtemp(prefix="pyct-bench-rescue-")
    parent = f"pyct-bench-{uuid_mod.uuid4().hex[:8]}"
    dep = Deployment(tmp, f"sqlite:///{tmp}/pyct.sqlite",
                     virt_driver="container",
                     extra={"container": {"cgroup_parent": parent}})
    client = None
    rows: dict[str, dict] = {}
    try:
        dep.manage("db", "sync")
        image = dep.manage("image", "create-busybox", "busybox").split()[-1]
        dep.manage("flavor", "create", "m1.tiny", "--id", "1", "--vcpus",
                   "1", "--ram", "512", "--disk", "1")
        dep.start("pyct-all-in-one")
        client = api_boot.Client(dep.port)
        sid = api_boot.boot(client, image)["id"]
        act(client, sid, {"rescue": None}, "RESCUE")  # warm-up
        act(client, sid, {"unrescue": None}, "ACTIVE")
        rescue, unrescue, suspend, resume = [], [], [], []
        for _ in range(args.runs):
            rescue.append(act(client, sid, {"rescue": None}, "RESCUE"))
            unrescue.append(act(client, sid, {"unrescue": None}, "ACTIVE"))
        for _ in range(args.runs):
            suspend.append(act(client, sid, {"suspend": None}, "SUSPENDED"))
            resume.append(act(client, sid, {"resume": None}, "ACTIVE"))
        rows = {"rescue: POST -> RESCUE": report.summarize(rescue),
                "unrescue: POST -> ACTIVE": report.summarize(unrescue),
                "suspend: POST -> SUSPENDED": report.summarize(suspend),
                "resume: POST -> ACTIVE": report.summarize(resume)}
    finally:
        api_boot.teardown_deployment(client, dep, tmp, parent)
    report.emit("rescue and suspend through the API", rows,
                {"poll": f"{api_boot.POLL * 1000:.0f} ms"}, args.json)


if __name__ == "__main__":
    main()
