"""Snapshots through ``pyct-all-in-one`` (container driver).

Usage (root): ``.venv/bin/python tools/bench/snapshot.py [--runs 10]
[--json]``

Starts a real ``pyct-all-in-one`` (SQLite, in-process bus, the container
driver, cgroup parent ``pyct-bench-*``) with ``tests/services.Deployment``,
imports busybox, makes m1.small (1 vCPU, 512 MiB, 2 GiB disk) and boots
one server per change size. Each server writes that much random data
(``pyct-manage server exec``: 10 MiB, then 500 MiB), then each run POSTs
``createImage`` and GETs the image every 5 ms until it is ``active``
(the clock stops there), records its size and deletes it again. At
exit the servers are
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

MiB = 1 << 20


def snapshot(client: api_boot.Client, sid: str, n: int
             ) -> tuple[float, int]:
    """(seconds POST -> active, image bytes); the image deleted after."""
    t0 = time.perf_counter()
    name = f"bench-{uuid_mod.uuid4().hex[:8]}-{n}"
    code, reply = client.call("POST", f"/v2.1/servers/{sid}/action",
                              {"createImage": {"name": name}})
    if code != 202:
        raise RuntimeError(f"createImage: {code} {reply}")
    # (2.37: the id is in the Location header, which the client drops)
    image_id = client.call("GET", f"/image/v2/images?name={name}")[1][
        "images"][0]["id"]
    while True:
        code, image = client.call("GET", f"/image/v2/images/{image_id}")
        if code == 200 and image.get("status") == "active":
            took = time.perf_counter() - t0
            break
        if code != 200 or time.perf_counter() - t0 > 300:
            raise RuntimeError(f"image {image_id}: {code} {image}")
        time.sleep(api_boot.POLL)
    while client.call("GET", f"/v2.1/servers/{sid}")[1]["server"][
            "OS-EXT-STS:task_state"] is not None:
        time.sleep(api_boot.POLL)
    client.call("DELETE", f"/image/v2/images/{image_id}")
    return took, int(image["size"])


def main() -> None:
    args = report.parser(__doc__.splitlines()[0], 10).parse_args()
    report.interrupt_on_term()
    tmp = tempfile.mkdtemp(prefix="pyct-bench-snapshot-")
    parent = f"pyct-bench-{uuid_mod.uuid4().hex[:8]}"
    dep = Deployment(tmp, f"sqlite:///{tmp}/pyct.sqlite",
                     virt_driver="container",
                     extra={"container": {"cgroup_parent": parent}})
    client = None
    rows: dict[str, dict] = {}
    extra: dict = {"poll": f"{api_boot.POLL * 1000:.0f} ms"}
    try:
        client, image = api_boot.start_all_in_one(dep, disk_gb=2)
        for mib in (10, 500):
            sid = api_boot.boot(client, image)["id"]
            dep.manage("server", "exec", sid, "--", "sh", "-c",
                       f"dd if=/dev/urandom of=/data bs=1M count={mib} "
                       "2>/dev/null && sync")
            snapshot(client, sid, -1)  # warm-up
            times, sizes = [], []
            for n in range(args.runs):
                took, size = snapshot(client, sid, n)
                times.append(took)
                sizes.append(size)
            rows[f"{mib} MiB changed: POST -> image active"] = \
                report.summarize(times)
            extra[f"{mib} MiB changed: image size"] = \
                f"{max(sizes) / MiB:.2f} MiB"
    finally:
        api_boot.teardown_deployment(client, dep, tmp, parent)
    report.emit("snapshots (createImage) through the API", rows, extra,
                args.json)


if __name__ == "__main__":
    main()
