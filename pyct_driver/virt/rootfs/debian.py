"""A bootable Debian guest image (systemd as init) built with debootstrap.

``build_debian_rootfs`` runs ``debootstrap --variant=minbase`` with systemd,
openssh-server and dbus, then fits the tree for life as a pyct guest:
units that make no sense in a container or only slow its boot are masked
(udev, networkd-wait-online, timesyncd, apt timers, kernel-module and
sysctl loaders -- those would reach the host's kernel), the build's SSH
host keys, machine-id and hostname are removed so every instance gets its
own, sshd takes keys only, and the first-boot agent of ``debian_agent`` is
installed and enabled. There is no network configuration: pyct plumbs the
guest's addresses from the host side.

The result is cached as ``<cache_dir>/debian-<suite>-<recipe hash>.tar``;
the hash covers everything that shapes the image except the mirror, so a
changed recipe builds anew and an unchanged one costs nothing. Images of
other recipes (another pyct version on the host, mid-upgrade) stay until
unused for ``STALE_DAYS`` (each use touches its file). Downloaded
packages are kept in ``<cache_dir>/debs`` for the next build. The mirror
defaults to the one the host's apt already uses.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time

from pyct_driver import exception
from pyct_driver.progress import SILENT, Progress, size
from pyct_driver.virt.rootfs import debian_agent, debootstrap

DEFAULT_CACHE_DIR = "/var/cache/pyct/images"
FALLBACK_MIRROR = "http://deb.debian.org/debian"
RECIPE_VERSION = 2  # bump when the code below changes the image
STALE_DAYS = 7

PACKAGES = ("systemd", "systemd-sysv", "dbus", "openssh-server", "iproute2",
            "ca-certificates", "jq")

MASK = (
    # no devices to manage, /sys is read-only
    "systemd-udevd.service", "systemd-udevd-control.socket",
    "systemd-udevd-kernel.socket", "systemd-udev-trigger.service",
    "systemd-udev-settle.service", "systemd-hwdb-update.service",
    # these write kernel-global state: the host's, not the guest's
    "systemd-modules-load.service", "kmod-static-nodes.service",
    "modprobe@.service",
    "systemd-sysctl.service", "systemd-binfmt.service",
    "proc-sys-fs-binfmt_misc.automount", "proc-sys-fs-binfmt_misc.mount",
    "sys-kernel-config.mount", "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount", "sys-fs-fuse-connections.mount",
    "dev-hugepages.mount", "systemd-pstore.service",
    # the host keeps time; networking is plumbed from outside
    "systemd-timesyncd.service", "systemd-networkd-wait-online.service",
    # no VT consoles; first boot must not prompt on the console
    "getty@tty1.service", "systemd-firstboot.service",
    # periodic jobs a short-lived cloud guest does not want
    "apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer",
    "e2scrub_reap.service", "fstrim.timer",
)

REMOVE = ("etc/ssh/ssh_host_*", "etc/hostname", "var/lib/dbus/machine-id",
          "var/cache/apt/archives/*.deb", "var/lib/apt/lists/*_*",
          "var/log/*.log", "var/log/apt/*", "etc/resolv.conf")


def recipe_hash(suite: str) -> str:
    """A short digest of everything that shapes the image but the mirror."""
    recipe = {"version": RECIPE_VERSION, "suite": suite,
              "packages": PACKAGES, "mask": MASK, "remove": REMOVE,
              "files": debian_agent.FILES, "enable": debian_agent.ENABLE}
    blob = json.dumps(recipe, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def cached_path(suite: str = "bookworm",
                cache_dir: str = DEFAULT_CACHE_DIR) -> str:
    return os.path.join(cache_dir, f"debian-{suite}-{recipe_hash(suite)}.tar")


def host_mirror(suite: str = "bookworm") -> str:
    """The Debian archive URL the host's apt is configured with."""
    found: list[tuple[str, list[str]]] = []
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        with contextlib.suppress(OSError), open(path) as f:
            for stanza in re.split(r"\n\s*\n", f.read()):
                fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza,
                                         re.M))
                if "deb" in fields.get("Types", "").split():
                    for uri in fields.get("URIs", "").split():
                        found.append((uri, fields.get("Suites", "").split()))
    lists = ["/etc/apt/sources.list",
             *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]
    for path in lists:
        with contextlib.suppress(OSError), open(path) as f:
            for line in f:
                m = re.match(r"\s*deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", line)
                if m:
                    found.append((m.group(1), [m.group(2)]))
    for uri, suites in found:
        if suite in suites and "security" not in uri:
            return uri.rstrip("/")
    return FALLBACK_MIRROR


def build_debian_rootfs(dest_tar: str | None = None, suite: str = "bookworm",
                        cache_dir: str = DEFAULT_CACHE_DIR,
                        mirror: str | None = None,
                        progress: Progress = SILENT) -> str:
    """Make sure the cached image exists; copy it to ``dest_tar`` if given.

    Returns the path of the tarball (``dest_tar``, or the cached file).
    Concurrent callers on one host wait for a single build. A build
    reports its stages and how far each is to ``progress``.
    """
    os.makedirs(cache_dir, mode=0o755, exist_ok=True)
    cached = cached_path(suite, cache_dir)
    with open(os.path.join(cache_dir, ".build.lock"), "w") as lock:
        if not _try_lock(lock):
            progress.stage("waiting for another build of the image")
            fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(cached):
            _build(cached, suite, cache_dir, mirror or host_mirror(suite),
                   progress)
        else:
            os.utime(cached)  # in use: not stale for another recipe
    if dest_tar is None:
        return cached
    try:
        shutil.copyfile(cached, dest_tar)
    except OSError as err:
        raise exception.RootfsError(
            reason=f"cannot copy {cached} to {dest_tar}: {err}") from err
    return dest_tar


def _try_lock(lock) -> bool:
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _unmount_below(path: str) -> None:
    # debootstrap mounts /proc and /sys in the target and may leave them
    # behind when it fails; never rmtree through a mount.
    with open("/proc/self/mounts") as f:
        points = [line.split()[1] for line in f]
    for point in sorted(points, key=len, reverse=True):
        if point == path or point.startswith(path + "/"):
            subprocess.run(["umount", "-l", point], capture_output=True)


def _build(cached: str, suite: str, cache_dir: str, mirror: str,
           progress: Progress) -> None:
    debs = os.path.join(cache_dir, "debs")
    os.makedirs(debs, exist_ok=True)
    work = tempfile.mkdtemp(prefix="pyct-debootstrap-", dir=cache_dir)
    root = os.path.join(work, "root")
    progress.stage(f"building the Debian {suite} image from {mirror} "
                   f"(first build, about a minute; cached in {cache_dir})")
    had = debootstrap.tree_bytes(debs)
    stages = debootstrap.Stages(
        progress, lambda: debootstrap.tree_bytes(debs) - had)
    try:
        debootstrap.run(["debootstrap", "--variant=minbase",
                         "--include=" + ",".join(PACKAGES),
                         f"--cache-dir={debs}", suite, root, mirror],
                        f"debootstrap {suite} from {mirror}",
                        on_line=stages.feed, heartbeat=stages.heartbeat)
        _unmount_below(root)
        progress.stage("fitting the tree for pyct guests")
        customize(root)
        tmp = os.path.join(work, "image.tar")
        progress.stage("writing the image tarball")
        debootstrap.run(
            ["tar", "--numeric-owner", "--sort=name", "--xattrs",
             "--xattrs-include=security.capability", "-C", root,
             "--exclude=./dev/*", "--exclude=./proc/*", "--exclude=./sys/*",
             "--exclude=./run/*", "-cf", tmp, "."], "tar the image",
            heartbeat=lambda: progress.update(
                f"writing the image tarball: {size(_size_of(tmp))}"))
        os.rename(tmp, cached)
        progress.stage(f"built {cached} ({size(_size_of(cached))}) in "
                       f"{progress.elapsed():.0f} s")
        # other recipes' images nobody used for a while take space only
        pattern = os.path.join(cache_dir, f"debian-{suite}-*.tar")
        for stale in glob.glob(pattern):
            with contextlib.suppress(OSError):
                if (stale != cached and time.time() - os.path.getmtime(stale)
                        > STALE_DAYS * 86400):
                    os.unlink(stale)
    finally:
        _unmount_below(work)
        shutil.rmtree(work, ignore_errors=True)


def _size_of(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def customize(root: str) -> None:
    """Fit a debootstrapped tree for life as a pyct guest (build-time only:
    the tree is ours, so plain paths are safe here)."""
    try:
        for pattern in REMOVE:
            for path in glob.glob(os.path.join(root, pattern)):
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
        units = os.path.join(root, "etc/systemd/system")
        for unit in MASK:
            link = os.path.join(units, unit)
            if os.path.lexists(link):
                os.unlink(link)
            os.symlink("/dev/null", link)
        for rel, (mode, text) in debian_agent.FILES.items():
            path = os.path.join(root, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(text)
            os.chmod(path, mode)
        # no display: boot to multi-user.target, not graphical.target
        default = os.path.join(units, "default.target")
        if os.path.lexists(default):
            os.unlink(default)
        os.symlink("/lib/systemd/system/multi-user.target", default)
        for unit, target in debian_agent.ENABLE.items():
            wants = os.path.join(units, f"{target}.wants")
            os.makedirs(wants, exist_ok=True)
            os.symlink(f"/etc/systemd/system/{unit}",
                       os.path.join(wants, unit))
        # Empty: systemd makes a machine-id per instance at boot and
        # commits it into the instance's own upper layer.
        with open(os.path.join(root, "etc/machine-id"), "w"):
            pass
        os.symlink("/etc/machine-id",
                   os.path.join(root, "var/lib/dbus/machine-id"))
        with open(os.path.join(root, "etc/resolv.conf"), "w"):
            pass
        with open(os.path.join(root, "etc/hosts"), "w") as f:
            f.write("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost "
                    "ip6-loopback\n")
        for name in ("var/lib/cloud/seed/nocloud-net", "mnt/config",
                     "var/lib/pyct-agent"):
            os.makedirs(os.path.join(root, name), exist_ok=True)
    except OSError as err:
        raise exception.RootfsError(
            reason=f"cannot customize the Debian tree {root}: {err}") from err
