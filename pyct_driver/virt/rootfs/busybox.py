"""A minimal bootable guest image built from the host's static busybox.

The tarball holds ``/bin/busybox``, one symlink per applet, an inittab that
prints a boot banner to the console and offers a root shell there once someone
presses Enter (``askfirst``: what a VM's serial console gives its operator, and
no shell runs on a console nobody reads), and the few files and empty
directories a guest expects. Members are sorted and carry fixed owners and
mtimes, so one host always produces the same bytes -- and the same layer
digest.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile

from pyct_driver import exception

_MTIME = 1_700_000_000  # fixed, for reproducible digests

_INITTAB = """\
# pyct busybox guest. The launcher has mounted /proc, /sys and /dev.
::sysinit:/bin/echo "pyct busybox guest booting"
::sysinit:/bin/sh -c 'echo "hostname: $(hostname)"'
::askfirst:-/bin/sh
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/echo "pyct busybox guest shutting down"
::shutdown:/bin/sync
"""

_FILES = {
    "etc/inittab": _INITTAB,
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\n"
                  "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    "etc/group": "root:x:0:\nnogroup:x:65534:\n",
    "etc/shadow": "root:*:19000:0:99999:7:::\n",
    "etc/hostname": "pyct-guest\n",
    "etc/hosts": "127.0.0.1 localhost\n::1 localhost\n",
    "etc/resolv.conf": "",
}
_DIRS = {"bin": 0o755, "sbin": 0o755, "usr": 0o755, "usr/bin": 0o755,
         "usr/sbin": 0o755, "etc": 0o755, "root": 0o700, "tmp": 0o1777,
         "dev": 0o755, "proc": 0o555, "sys": 0o555, "run": 0o755,
         "var": 0o755, "var/log": 0o755, "home": 0o755}
_MODES = {"etc/shadow": 0o600}


def applets(busybox: str) -> list[str]:
    """The applet paths (``bin/ls``, ``sbin/init``...) ``busybox`` offers."""
    try:
        out = subprocess.run([busybox, "--list-full"], capture_output=True,
                             text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        raise exception.RootfsError(
            reason=f"cannot list applets of {busybox}: {err}") from err
    return sorted({line.strip().lstrip("/") for line in out.splitlines()
                   if line.strip() and line.strip() != "bin/busybox"})


def _info(name: str, kind: bytes, mode: int, size: int = 0,
          link: str = "") -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.size, ti.linkname = kind, mode, size, link
    ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = _MTIME, 0, 0, "root", \
        "root"
    return ti


def build_busybox_rootfs(dest_tar: str, busybox: str = "/bin/busybox") -> None:
    """Write the busybox guest rootfs tarball to ``dest_tar``."""
    try:
        with open(busybox, "rb") as f:
            binary = f.read()
    except OSError as err:
        raise exception.RootfsError(
            reason=f"cannot read {busybox} (install busybox-static): {err}") \
            from err
    members: dict[str, tuple[tarfile.TarInfo, bytes | None]] = {}
    for d, mode in _DIRS.items():
        members[d] = (_info(d, tarfile.DIRTYPE, mode), None)
    members["bin/busybox"] = (_info("bin/busybox", tarfile.REGTYPE, 0o755,
                                    len(binary)), binary)
    for path in applets(busybox):
        parent = os.path.dirname(path)
        if parent not in members:
            members[parent] = (_info(parent, tarfile.DIRTYPE, 0o755), None)
        rel = os.path.relpath("bin/busybox", parent)
        members[path] = (_info(path, tarfile.SYMTYPE, 0o777, link=rel), None)
    for name, text in _FILES.items():
        data = text.encode()
        members[name] = (_info(name, tarfile.REGTYPE,
                               _MODES.get(name, 0o644), len(data)), data)
    tmp = f"{dest_tar}.tmp{os.getpid()}"
    try:
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            tar.addfile(_info(".", tarfile.DIRTYPE, 0o755))
            for name in sorted(members):
                ti, data = members[name]
                tar.addfile(ti, io.BytesIO(data) if data is not None
                            else None)
        os.rename(tmp, dest_tar)
    except OSError as err:
        raise exception.RootfsError(
            reason=f"cannot write {dest_tar}: {err}") from err
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
