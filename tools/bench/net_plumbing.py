"""Network plumbing's share of spawn and destroy (container driver).

Usage (root): ``.venv/bin/python tools/bench/net_plumbing.py [--runs 30]
[--json]``

One ``ContainerDriver`` (``driver_env.DriverEnv``: busybox image, m1.tiny)
boots busybox guests two ways, interleaved so both share the machine's
noise: with one vif on a project network (``eth0``, a fixed IP of a random
/24 of 10.244.0.0/16 checked against the host's routes) and without any.
An "anchor" guest stays on the network for the whole run, so the bridge
exists throughout, as on a host whose network already has members (the
first port of a network also pays ``ensure_bridge``'s creation; shown
separately). Rows:

* spawn / destroy with and without a vif, and the difference of medians;
* ``NetworkPlumber.plug_all`` as called inside spawn (ensure_bridge +
  veth created in the guest's netns + anti-spoofing filters + address and
  routes inside), timed by wrapping the driver's live plumber;
* ``unplug_all`` inside destroy (only queues the deletion) and the
  deletion itself, off the request path (the deleter thread's work per
  job, collected after ``flush``).

At exit every guest is destroyed, the bridge removed and the host checked
for our links; the driver env removes cgroups, mounts and the temp dir.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import statistics
import subprocess
import sys
import time
import uuid as uuid_mod

import driver_env
import report

from pyct_driver.virt import base  # noqa: E402  (driver_env set sys.path)
from tests.privileged.test_debian_ssh import free_pool  # noqa: E402

WARMUP = 3


class Timer:
    """Wraps one method of a live object; collects its wall times."""

    def __init__(self, obj: object, attr: str) -> None:
        self.samples: list[float] = []
        fn = getattr(obj, attr)

        def timed(*a, **kw):
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                self.samples.append(time.perf_counter() - t)
        setattr(obj, attr, timed)

    def take(self) -> float:
        value = sum(self.samples)
        self.samples.clear()
        return value


class Network:
    """Addresses of one test network; hands out host addresses."""

    def __init__(self) -> None:
        self.id = uuid_mod.uuid4().hex
        self.net = ipaddress.IPv4Network(free_pool())
        self.gateway = str(self.net.network_address + 1)
        self.hosts = (str(h) for h in list(self.net.hosts())[1:])

    def vif(self) -> base.VifSpec:
        port = uuid_mod.uuid4().hex
        return base.VifSpec(
            port_id=port, network_id=self.id,
            mac="fa:16:3e:" + ":".join(port[i:i + 2] for i in (0, 2, 4)),
            ip=next(self.hosts), prefixlen=self.net.prefixlen,
            gateway=self.gateway)


_RANGES = (1_000_000_000 + k * 65536 for k in range(10_000))


def new_spec(env: driver_env.DriverEnv, net: "Network | None"
             ) -> base.InstanceSpec:
    """An unprivileged guest (its own uid/gid range), with a vif or not."""
    spec = dataclasses.replace(env.new_spec(),
                               id_range=(next(_RANGES), 65536))
    return dataclasses.replace(spec, vifs=(net.vif(),)) if net else spec


def our_links(net: Network) -> list[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True,
                         text=True).stdout
    mine = "pyb-" + net.id[:11]
    return [line for line in out.splitlines() if mine in line]


def main() -> None:
    p = report.parser(__doc__.splitlines()[0], 30)
    args = p.parse_args()
    report.interrupt_on_term()
    rows: dict[str, dict] = {}
    extra: dict = {}
    net = Network()
    samples: dict[str, list[float]] = {k: [] for k in (
        "spawn with vif", "spawn without vif", "destroy with vif",
        "destroy without vif", "plug_all in spawn", "unplug_all in destroy",
        "veth deletion (background thread)")}
    with driver_env.DriverEnv("pyct-bench-net-") as env:
        drv = env.driver
        plumber = drv.net
        plug = Timer(plumber, "plug_all")
        unplug = Timer(plumber, "unplug_all")
        # runs in the deleter's thread; flush() waits for it
        deletion = Timer(plumber.deleter, "_do")
        try:
            anchor = new_spec(env, net)
            t = time.perf_counter()
            env.spawn(anchor)
            extra["first port of the network (bridge created): spawn ms"] \
                = round((time.perf_counter() - t) * 1000, 1)
            extra["first port: plug_all ms"] = round(plug.take() * 1000, 1)
            for i in range(WARMUP + args.runs):
                order = (True, False) if i % 2 else (False, True)
                for with_vif in order:
                    spec = new_spec(env, net if with_vif else None)
                    tag = "with vif" if with_vif else "without vif"
                    t = time.perf_counter()
                    env.spawn(spec)
                    spawned = time.perf_counter() - t
                    plugged = plug.take()
                    t = time.perf_counter()
                    env.destroy(spec)
                    destroyed = time.perf_counter() - t
                    unplugged = unplug.take()
                    plumber.flush()
                    deleted = deletion.take()
                    if i < WARMUP:
                        continue
                    samples[f"spawn {tag}"].append(spawned)
                    samples[f"destroy {tag}"].append(destroyed)
                    if with_vif:
                        samples["plug_all in spawn"].append(plugged)
                        samples["unplug_all in destroy"].append(unplugged)
                        samples["veth deletion (background thread)"].append(
                            deleted)
        finally:
            for spec in list(env.live.values()):
                try:
                    env.destroy(spec)
                except Exception as err:
                    print(f"WARNING: destroy {spec.uuid}: {err}",
                          file=sys.stderr)
            plumber.remove_bridge_if_unused(net.id)
            plumber.flush()
            left = our_links(net)
            if left:
                print(f"WARNING: links left: {left}", file=sys.stderr)
    for label, values in samples.items():
        rows[label] = report.summarize(values)
    for what in ("spawn", "destroy"):
        a, b = samples[f"{what} with vif"], samples[f"{what} without vif"]
        if a and b:
            extra[f"{what}: median with vif - median without (ms)"] = round(
                (statistics.median(a) - statistics.median(b)) * 1000, 1)
    extra["network"] = f"{net.net} (anchor guest keeps the bridge)"
    report.emit("Network plumbing per spawn / destroy (container driver, "
                "busybox, m1.tiny)", rows, extra, args.json)


if __name__ == "__main__":
    main()
