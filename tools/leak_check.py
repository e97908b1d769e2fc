"""Fail when pyct left anything on the host after the test suite.

Looks for mounts, cgroups, loop devices, network namespaces and links,
and processes that belong to pyct (by path or name containing "pyct", or
inside a pyct cgroup). Prints what it found; exit status 1 on any leak.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys

CGROUP_ROOT = "/sys/fs/cgroup"
HOST_LINKS = ("lo", "eth0")


def mounts() -> list[str]:
    with open("/proc/self/mounts") as f:
        return [line.split()[1] for line in f if "pyct" in line]


def cgroups() -> list[str]:
    found = []
    for path in glob.glob(f"{CGROUP_ROOT}/*/"):
        for root, dirs, _ in os.walk(path):
            for d in dirs:
                if "pyct" in d:
                    found.append(os.path.join(root, d))
            if root.count("/") > 8:
                dirs[:] = []
    return found


def loops() -> list[str]:
    out = []
    for backing in glob.glob("/sys/block/loop*/loop/backing_file"):
        with open(backing) as f:
            if "pyct" in f.read():
                out.append(backing.split("/")[3])
    return out


def netns() -> list[str]:
    return [n for n in os.listdir("/run/netns")] if os.path.isdir(
        "/run/netns") else []


def links() -> list[str]:
    try:
        out = subprocess.run(["ip", "-o", "link", "show"], check=True,
                             capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    names = [line.split(":")[1].strip().split("@")[0]
             for line in out.splitlines()]
    return [n for n in names
            if n not in HOST_LINKS and not n.startswith("ifb")]


def processes() -> list[str]:
    found = []
    for cg in glob.glob(f"{CGROUP_ROOT}/*/**/*pyct*/cgroup.procs",
                        recursive=True):
        with open(cg) as f:
            found += [f"{pid.strip()} in {cg}" for pid in f if pid.strip()]
    me = os.getpid()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == me:
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if ("pyct_driver" in cmd or "pyct-" in cmd) and "leak_check" not in cmd:
            found.append(f"{pid}: {cmd[:120]}")
    return found


def main() -> int:
    leaks = {"mounts": mounts(), "cgroups": cgroups(), "loop devices": loops(),
             "network namespaces": netns(), "network links": links(),
             "processes": processes()}
    bad = {k: v for k, v in leaks.items() if v}
    for kind, items in bad.items():
        print(f"LEAK: {len(items)} {kind}:", *items[:20], sep="\n  ")
    if not bad:
        print("leak check: no pyct mount, cgroup, loop device, netns, link "
              "or process left")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
