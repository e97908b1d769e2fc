"""Shelve and unshelve through ``pyct-all-in-one`` (container driver).

Usage (root): ``.venv/bin/python tools/bench/unshelve.py [--runs 10]
[--json]``

Starts a real ``pyct-all-in-one`` (SQLite, in-process bus, the container
driver, cgroup parent ``pyct-bench-*``, ``shelved_offload_time`` 0) with
``tests/services.Deployment``, imports busybox, makes m1.tiny (1 vCPU,
512 MiB, 1 GiB) and boots one server that writes 10 MiB of its own
(``pyct-manage server exec``). Each run: POST ``shelve`` and GET every
5 ms until SHELVED_OFFLOADED (timed: snapshot plus offload), then POST
``unshelve`` until ACTIVE with no task (timed: scheduling, import of the
shelved image, boot, and the shelved image's deletion). At exit the
server is deleted, the service and its launcher stopped, and every guest
cgroup, mount, loop device and the temp dir removed.
"""

from __future__ import annotations

import os
import sys
import tempfile
import uuid as uuid_mod

import api_boot
import report
from resize import act

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, REPO)
from tests.services import Deployment  # noqa: E402


def main() -> None:
    args = report.parser(__doc__.splitlines()[0], 10).parse_args()
    report.interrupt_on_term()
    tmp = tempfile.mkdtemp(prefix="pyct-bench-unshelve-")
    parent = f"pyct-bench-{uuid_mod.uuid4().hex[:8]}"
    dep = Deployment(tmp, f"sqlite:///{tmp}/pyct.sqlite",
                     virt_driver="container",
                     extra={"container": {"cgroup_parent": parent},
                            "DEFAULT": {"shelved_offload_time": 0}})
    client = None
    rows: dict[str, dict] = {}
    try:
        client, image = api_boot.start_all_in_one(dep)
        sid = api_boot.boot(client, image)["id"]
        dep.manage("server", "exec", sid, "--", "sh", "-c",
                   "dd if=/dev/urandom of=/data bs=1M count=10 "
                   "2>/dev/null && sync")
        act(client, sid, {"shelve": None}, "SHELVED_OFFLOADED")  # warm-up
        act(client, sid, {"unshelve": None}, "ACTIVE")
        shelve, unshelve = [], []
        for _ in range(args.runs):
            shelve.append(act(client, sid, {"shelve": None},
                              "SHELVED_OFFLOADED"))
            unshelve.append(act(client, sid, {"unshelve": None}, "ACTIVE"))
        rows = {"shelve: POST -> SHELVED_OFFLOADED":
                report.summarize(shelve),
                "unshelve: POST -> ACTIVE": report.summarize(unshelve)}
    finally:
        api_boot.teardown_deployment(client, dep, tmp, parent)
    report.emit("shelve and unshelve through the API", rows,
                {"poll": f"{api_boot.POLL * 1000:.0f} ms",
                 "guest's own data": "10 MiB"}, args.json)


if __name__ == "__main__":
    main()
