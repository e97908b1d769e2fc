"""Cold migration time of a real guest with 10 MB and 500 MB of changes.

Usage (root): ``.venv/bin/python tools/bench/cold_migrate.py [--runs 5]
[--sizes 10,500] [--json]``

Two container drivers on this machine stand for two hosts (each its own
state directory, ``pyct-test-*`` cgroup parent and launcher:
``tests/privileged/guest_tools.container_driver``), with busybox
imported on both. For each size a guest (1 vCPU, 128 MiB, 2 GiB root)
boots on the first host and writes that many MB of random bytes into
its root (their md5 is checked in the guest after the last move); each
run then moves it to the other host the way the compute
manager does (``compute.migrate``): power off, a one-time-token listener
on the management address (loopback here), the stream
(``VirtDriver.send_guest`` → ``receive_guest``) with its SHA-256 checked,
power on. The clock runs from the power-off to the guest running on the
destination (``total``), split into the guest's clean shutdown (the
driver's stop: the guest's init is given up to 5 s), the ``transfer``
(listener, stream, digest, the destination's new disk) and the ``start``
there; the confirm (the source's destroy) is not timed. Runs go back and
forth between the two hosts. Printed: median and p95 of each, and the
stream's rate. Everything is removed at exit (guests,
cgroups, mounts, loop devices, temp dirs), also on failure.
"""

from __future__ import annotations

import os
import sys
import time

import report

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, REPO)
from pyct_driver.compute import migration_transfer  # noqa: E402
from tests.privileged.guest_tools import (  # noqa: E402
    IMAGE_ID, Guests, build_busybox_rootfs, container_driver, flavor,
    guest_exec)


def move(src, dst, spec) -> dict[str, float]:
    """One move's phases (seconds): the guest's clean shutdown, the
    stream with its check, the start on the destination, the total."""
    t0 = time.perf_counter()
    src.power_off(spec, 5)
    t1 = time.perf_counter()
    rec = migration_transfer.Receiver(
        "127.0.0.1", spec.uuid, lambda source: dst.receive_guest(spec,
                                                                 source))
    digest = migration_transfer.send(
        rec.endpoint(), spec.uuid, lambda sink: src.send_guest(spec, sink))
    rec.wait(digest, 600)
    t2 = time.perf_counter()
    dst.power_on(spec)
    t3 = time.perf_counter()
    src.destroy(spec)  # the confirm: not timed
    return {"total": t3 - t0, "shutdown": t1 - t0, "transfer": t2 - t1,
            "start": t3 - t2}


def measure(hosts, size_mb: int, runs: int) -> list[dict[str, float]]:
    a, b = hosts
    on_a, on_b = Guests(a), Guests(b)
    try:
        spec = on_a.boot(flavor(root_gb=2))
        on_b.specs.append(spec)
        res = guest_exec(a, spec.uuid, [
            "sh", "-c", f"head -c {size_mb << 20} /dev/urandom > /changes"
                        " && sync && md5sum /changes"], timeout=600)
        assert res.returncode == 0, res
        written = res.stdout.split()[0]
        samples, here, there = [], a, b
        for _ in range(runs):
            samples.append(move(here, there, spec))
            here, there = there, here
        out = guest_exec(here, spec.uuid, ["md5sum", "/changes"],
                         timeout=600)
        assert out.stdout.split()[0] == written, out  # moved intact
        return samples
    finally:
        on_a.close()
        on_b.close()


def main() -> None:
    p = report.parser(__doc__.splitlines()[0], 5)
    p.add_argument("--sizes", default="10,500",
                   help="MB of changes, comma-separated")
    args = p.parse_args()
    report.interrupt_on_term()
    rows, rates = {}, {}
    with container_driver({"metadata": {"port": 0}}) as a, \
            container_driver({"metadata": {"port": 0}}) as b:
        for drv in (a, b):
            tar = os.path.join(drv.test_tmp, "busybox.tar")
            build_busybox_rootfs(tar)
            drv.import_image(IMAGE_ID, tar)
        for size in (int(s) for s in args.sizes.split(",")):
            samples = measure((a, b), size, args.runs)
            for phase in ("total", "shutdown", "transfer", "start"):
                rows[f"{size} MB of changes: {phase}"] = report.summarize(
                    [s[phase] for s in samples])
            rates[f"{size} MB: stream MB/s at the median"] = round(
                size / rows[f"{size} MB of changes: transfer"]["median"], 1)
    report.emit("cold migration between two hosts on this machine", rows,
                rates, args.json)


if __name__ == "__main__":
    main()
