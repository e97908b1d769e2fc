"""The config drive of a container guest: a host directory bound read-only
into its root instead of an ISO9660 disk labelled config-2.

``build`` writes the file map the compute manager computed
(``InstanceSpec.config_drive_files``: the OpenStack ``openstack/<version>/``
tree and a NoCloud seed under ``nocloud/``) into a host directory the guest
cannot write; ``attach`` binds it read-only at ``/mnt/config`` (the
ConfigDrive layout, for people and scripts that look there) and its
``nocloud/`` part at ``/var/lib/cloud/seed/nocloud-net``, where cloud-init's
NoCloud datasource finds it without any disk label. Both binds go through
``inject.bind_readonly``, so guest symlinks cannot redirect them; ``attach``
must run after the root is mounted and before the guest's init starts.
"""

from __future__ import annotations

import os
import shutil

from pyct_driver import exception
from pyct_driver.virt.rootfs import inject

# guest mount point -> sub-directory of the built drive
MOUNTS = (("/mnt/config", ""),
          ("/var/lib/cloud/seed/nocloud-net", "nocloud"))


def _safe_relpath(name: str) -> str:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise exception.InvalidInput(reason=f"bad config drive path {name!r}")
    return os.path.join(*parts)


def build(directory: str, files: tuple[tuple[str, bytes], ...]
          | dict[str, bytes]) -> None:
    """(Re)write the drive at ``directory``: exactly ``files``, 0644 files
    in 0755 directories, root-owned. The directory is pyct's own, so plain
    writes are safe; it is replaced whole so stale files never linger."""
    items = files.items() if isinstance(files, dict) else files
    tmp = directory + ".new"
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp, 0o755)
        os.chmod(tmp, 0o755)
        for sub in {sub for _, sub in MOUNTS if sub}:
            os.makedirs(os.path.join(tmp, sub), 0o755, exist_ok=True)
        for name, data in items:
            path = os.path.join(tmp, _safe_relpath(name))
            os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
            os.chmod(path, 0o644)
        shutil.rmtree(directory, ignore_errors=True)
        os.rename(tmp, directory)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise exception.RootfsError(
            reason=f"cannot build config drive {directory}: {err}") from err


def attach(root: str, directory: str) -> None:
    """Bind the built drive into the mounted guest root (all or none)."""
    done = []
    try:
        for guest_path, sub in MOUNTS:
            inject.bind_readonly(root, guest_path,
                                 os.path.join(directory, sub))
            done.append(guest_path)
    except exception.PyctError:
        for guest_path in reversed(done):
            inject.unbind(root, guest_path)
        raise


def detach(root: str) -> None:
    """Remove the drive's binds from the root (idempotent); before the
    root itself is unmounted."""
    if not os.path.isdir(root):
        return
    for guest_path, _ in reversed(MOUNTS):
        inject.unbind(root, guest_path)


def remove(directory: str) -> None:
    shutil.rmtree(directory, ignore_errors=True)
