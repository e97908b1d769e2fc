"""Fail when the test suite left anything of pyct on the host.

What counts: mounts and loop devices whose lines mention "pyct", cgroups
with "pyct" in their name, every network namespace, every network link
but lo, eth0 and ifb*, every nf_tables table with "pyct" in its name
(pyct's NAT table exists only while a network has NAT, so one left after
the suite is a leak), and processes of pyct (command line, or a cgroup
with "pyct" in its path).

``make test`` runs it twice. ``--save FILE`` before the suite records what
is there; ``--against FILE`` after it blames the suite only for what is
new, and never for what belongs to a pyct deployment named with
``--foreign-state DIR`` (``make run``'s all-in-one, ./state), which may
have started, booted guests or stopped meanwhile: its state dir (mounts,
loop devices, processes naming it), its cgroup parent (groups, and the
processes in them) and the bridges and ports of its database's networks
(read from DIR/pyct.conf). Without ``--against`` everything found is a
leak. Prints what it found; exit status 1 on any leak.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import os
import subprocess
import sys

CGROUP_ROOT = "/sys/fs/cgroup"
HOST_LINKS = ("lo", "eth0")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass(frozen=True)
class Item:
    """One thing found: what to print, and what to attribute it by."""

    text: str
    refs: tuple[str, ...]


Snapshot = dict[str, dict[str, Item]]  # kind -> identity -> item


def _read(path: str, mode: str = "r"):
    try:
        with open(path, mode) as f:
            return f.read()
    except OSError:
        return None


def mounts() -> dict[str, Item]:
    found = {}
    for line in (_read("/proc/self/mounts") or "").splitlines():
        if "pyct" in line:
            source, point, fstype = line.split()[:3]
            found[f"{point} {fstype} {source}"] = Item(point, (point, source))
    return found


def cgroups() -> dict[str, Item]:
    found = {}
    for path in glob.glob(f"{CGROUP_ROOT}/*/"):
        for root, dirs, _ in os.walk(path):
            for d in dirs:
                if "pyct" in d:
                    full = os.path.join(root, d)
                    found[full] = Item(full, (full,))
            if root.count("/") > 8:
                dirs[:] = []
    return found


def loops() -> dict[str, Item]:
    found = {}
    for backing in glob.glob("/sys/block/loop*/loop/backing_file"):
        path = (_read(backing) or "").strip()
        if "pyct" in path:
            dev = backing.split("/")[3]
            found[f"{dev} {path}"] = Item(f"{dev} ({path})", (path,))
    return found


def netns() -> dict[str, Item]:
    names = os.listdir("/run/netns") if os.path.isdir("/run/netns") else []
    return {n: Item(n, (n,)) for n in names}


def links() -> dict[str, Item]:
    try:
        out = subprocess.run(["ip", "-o", "link", "show"], check=True,
                             capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    names = [line.split(":")[1].strip().split("@")[0]
             for line in out.splitlines()]
    return {n: Item(n, (n,)) for n in names
            if n not in HOST_LINKS and not n.startswith("ifb")}


def nft_tables() -> dict[str, Item]:
    """``family name`` of each pyct nf_tables table (``nft`` missing: the
    host has none)."""
    try:
        out = subprocess.run(["nft", "list", "tables"], check=True,
                             capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    found = {}
    for line in out.splitlines():
        words = line.split()
        if len(words) == 3 and words[0] == "table" and "pyct" in words[2]:
            key = f"{words[1]} {words[2]}"
            found[key] = Item(key, (words[2],))
    return found


def processes() -> dict[str, Item]:
    found = {}
    me = os.getpid()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == me:
            continue
        raw = _read(f"/proc/{pid}/cmdline", "rb")
        stat = _read(f"/proc/{pid}/stat")
        if raw is None or stat is None:
            continue  # gone meanwhile
        cmd = raw.replace(b"\0", b" ").decode(errors="replace").strip()
        groups = [line.split(":", 2)[2] for line in
                  (_read(f"/proc/{pid}/cgroup") or "").splitlines()
                  if line.count(":") >= 2]
        in_pyct_group = any("pyct" in part for g in groups
                            for part in g.split("/"))
        if (("pyct_driver" in cmd or "pyct-" in cmd or in_pyct_group)
                and "leak_check" not in cmd):
            start = stat.rsplit(")", 1)[1].split()[19]  # field 22
            found[f"{pid}/{start}"] = Item(f"{pid}: {cmd[:120]}",
                                           (cmd, *groups))
    return found


KINDS = {"mounts": mounts, "cgroups": cgroups, "loop devices": loops,
         "network namespaces": netns, "network links": links,
         "nft tables": nft_tables, "processes": processes}


def snapshot() -> Snapshot:
    return {kind: look() for kind, look in KINDS.items()}


def save(snap: Snapshot, path: str) -> None:
    with open(path, "w") as f:
        json.dump({k: {i: dataclasses.asdict(v) for i, v in items.items()}
                   for k, items in snap.items()}, f)


def load(path: str) -> Snapshot:
    with open(path) as f:
        raw = json.load(f)
    return {k: {i: Item(v["text"], tuple(v["refs"])) for i, v in
                items.items()} for k, items in raw.items()}


@dataclasses.dataclass(frozen=True)
class Deployment:
    """What a running pyct deployment (not the suite's) may hold."""

    paths: tuple[str, ...]
    cgroup_parent: str | None
    links: frozenset[str]

    def _under(self, ref: str) -> bool:
        return any(p in ref for p in self.paths)

    def _in_parent(self, group: str) -> bool:
        """``group`` is a cgroup: a directory under /sys/fs/cgroup (in a
        v1 hierarchy's mount or the v2 one) or a path as /proc/PID/cgroup
        shows it."""
        if not self.cgroup_parent:
            return False
        want = [p for p in self.cgroup_parent.split("/") if p]
        parts = [p for p in group.split("/") if p]
        root = [p for p in CGROUP_ROOT.split("/") if p]
        if parts[:len(root)] == root:
            parts = parts[len(root):]
            if parts and os.path.ismount(os.path.join(CGROUP_ROOT, parts[0])):
                parts = parts[1:]  # a v1 hierarchy
        return parts[:len(want)] == want

    def owns(self, kind: str, item: Item) -> bool:
        if kind == "network links":
            return item.refs[0] in self.links
        if kind == "cgroups":
            return self._in_parent(item.refs[0])
        if kind == "processes":
            return (self._under(item.refs[0])
                    or any(self._in_parent(g) for g in item.refs[1:]))
        if kind in ("mounts", "loop devices"):
            return any(self._under(r) for r in item.refs)
        return False


def deployment(state_dir: str) -> Deployment | None:
    """The deployment whose config is STATE_DIR/pyct.conf, if any."""
    conf_file = os.path.join(state_dir, "pyct.conf")
    if not os.path.isfile(conf_file):
        return None
    sys.path.insert(0, REPO)
    from oslo_config import cfg
    from pyct_driver import conf as pyct_conf

    conf = cfg.ConfigOpts()
    for group, opts in pyct_conf.list_opts():
        conf.register_opts(opts, group=group)
    conf(["--config-file", conf_file], project="pyct",
         default_config_files=[])
    paths = {os.path.realpath(state_dir) + "/",
             os.path.realpath(conf.state_path) + "/"}
    if conf.container.base_dir:
        paths.add(os.path.realpath(conf.container.base_dir) + "/")
    return Deployment(tuple(sorted(paths)), conf.container.cgroup_parent,
                      frozenset(_link_names(conf.database.connection)))


def _link_names(url: str) -> set[str]:
    """pyb-/pyv- names of the networks and ports in the database at
    ``url``; none if it cannot be read (said on stderr)."""
    from pyct_driver.db import networks as db_networks
    from pyct_driver.db.engine import Database
    from pyct_driver.virt.network.names import bridge_name, veth_name

    if url.startswith("sqlite:///") and not os.path.exists(
            url[len("sqlite:///"):]):
        return set()  # never ran: and reading would create the file
    try:
        db = Database(url)
        try:
            names = {bridge_name(n["id"])
                     for n in db_networks.list_networks(db)}
            names |= {veth_name(p["id"]) for p in db_networks.list_ports(db)}
        finally:
            db.dispose()
    except Exception as err:  # noqa: BLE001 - report, attribute less
        print(f"leak check: cannot read the networks of {url}: {err}",
              file=sys.stderr)
        return set()
    return names


def new_items(before: Snapshot | None, after: Snapshot,
              foreign: list[Deployment]) -> tuple[Snapshot, int]:
    """(what is in ``after`` but not in ``before`` and not owned by a
    foreign deployment, how many items were left as foreign)."""
    out: Snapshot = {}
    skipped = 0
    for kind, items in after.items():
        known = (before or {}).get(kind, {})
        out[kind] = {}
        for key, item in items.items():
            if key in known:
                continue
            if any(d.owns(kind, item) for d in foreign):
                skipped += 1
                continue
            out[kind][key] = item
    return out, skipped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--save", metavar="FILE",
                        help="record what is there now and exit 0")
    parser.add_argument("--against", metavar="FILE",
                        help="blame only what is not in this --save file")
    parser.add_argument("--foreign-state", metavar="DIR", action="append",
                        default=[], help="a running deployment's state dir "
                                         "whose resources are not leaks")
    args = parser.parse_args(argv)
    snap = snapshot()
    if args.save:
        save(snap, args.save)
        print(f"leak check: baseline of {sum(map(len, snap.values()))} "
              f"items saved to {args.save}")
        return 0
    foreign = [d for d in map(deployment, args.foreign_state) if d]
    before = load(args.against) if args.against else None
    leaks, skipped = new_items(before, snap, foreign)
    bad = {k: v for k, v in leaks.items() if v}
    for kind, items in bad.items():
        texts = sorted(i.text for i in items.values())
        print(f"LEAK: {len(texts)} {kind}:", *texts, sep="\n  ")
    if skipped:
        print(f"leak check: {skipped} items belong to the deployment(s) at "
              f"{', '.join(args.foreign_state)}, not to the suite")
    if not bad:
        print("leak check: no pyct mount, cgroup, loop device, netns, link, "
              "nft table or process left" + (" that was not there before"
                                   if before is not None else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
