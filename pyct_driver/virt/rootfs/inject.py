"""Host-side writes into a guest's root that no guest symlink can redirect.

A guest owns every name under its root and may have planted symlinks
(``/root/.ssh -> /etc``, ``/etc/hostname -> /proc/1/root/...``) or swap a
directory for a symlink while the host writes. Every path here is therefore
resolved by the kernel with ``openat2(RESOLVE_IN_ROOT)``: ``..`` and absolute
symlinks stop at the guest's root, magic links and mount crossings are
refused, and the resolved directory is then held as an fd, so a later swap
cannot move the write. Missing directories are made one component at a time
(``mkdirat`` on the held parent, then ``openat2`` again); the final file is
written to a fresh temporary name with ``O_EXCL|O_NOFOLLOW`` in that parent
and renamed over the target, which replaces a planted symlink instead of
following it. Without ``openat2`` (kernel < 5.6) nothing is written: a
userspace path walk would reopen the race this module exists to close.
``bind_readonly`` uses the same resolution to put a host directory (the
config drive) read-only inside the root with the new mount API, mounting on
the resolved fd rather than on a path.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from typing import Iterator

from pyct_driver import authorized_key, exception
from pyct_driver.virt import base
from pyct_driver.virt.kernel import files
from pyct_driver.virt.kernel import mounts as km

_RESOLVE = (files.RESOLVE_IN_ROOT | files.RESOLVE_NO_MAGICLINKS
            | files.RESOLVE_NO_XDEV)


def _split(path: str) -> list[str]:
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise exception.InvalidInput(
            reason=f"guest path {path!r} must be absolute, without '..'")
    return parts


@contextlib.contextmanager
def _root_fd(root: str) -> Iterator[int]:
    try:
        fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as err:
        raise exception.RootfsError(
            reason=f"cannot open guest root {root}: {err}") from err
    try:
        yield fd
    finally:
        os.close(fd)


def _open_dir(rootfd: int, parts: list[str], create: bool,
              mode: int = 0o755) -> int:
    """Resolve ``/parts...`` inside the root as the guest would (its
    symlinks followed, but never out of the root), making missing
    components when ``create``; returns an O_RDONLY directory fd."""
    flags = os.O_RDONLY | os.O_DIRECTORY
    fd = files.openat2(rootfd, "/", flags, _RESOLVE)
    try:
        for i, name in enumerate(parts):
            prefix = "/" + "/".join(parts[:i + 1])
            try:
                nxt = files.openat2(rootfd, prefix, flags, _RESOLVE)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(name, mode, dir_fd=fd)
                except FileExistsError:
                    pass  # made meanwhile, or a dangling symlink: see below
                # Reopened by path from the root: if the guest swapped the
                # component for a symlink, it is followed inside the root
                # only; a dangling one fails here with ENOENT.
                nxt = files.openat2(rootfd, prefix, flags, _RESOLVE)
            os.close(fd)
            fd = nxt
        return fd
    except BaseException:
        os.close(fd)
        raise


def _need_openat2(rootfd: int) -> None:
    try:
        os.close(files.openat2(rootfd, "/", os.O_PATH, _RESOLVE))
    except OSError as err:
        if err.errno in (errno.ENOSYS, errno.E2BIG, errno.EINVAL):
            raise exception.RootfsError(
                reason="openat2(RESOLVE_IN_ROOT) is unavailable (kernel "
                "5.6+ needed); refusing to write into guest roots") from err
        raise


def ensure_dir(root: str, path: str, mode: int = 0o755, uid: int = 0,
               gid: int = 0) -> None:
    """Make directory ``path`` inside ``root`` (and its missing parents,
    0755 root-owned); the last component gets ``mode`` and owner even if
    it existed (sshd refuses a group-writable ``~/.ssh``)."""
    parts = _split(path)
    with _root_fd(root) as rootfd:
        try:
            _need_openat2(rootfd)
            fd = _open_dir(rootfd, parts, create=True)
            try:
                os.fchown(fd, uid, gid)
                os.fchmod(fd, mode)
            finally:
                os.close(fd)
        except OSError as err:
            raise exception.RootfsError(
                reason=f"cannot make {path} in guest root {root}: "
                f"{err.strerror or err}") from err


def write_file(root: str, path: str, data: bytes, mode: int = 0o644,
               uid: int = 0, gid: int = 0) -> None:
    """Atomically replace file ``path`` inside ``root`` with ``data``.

    A symlink at ``path`` is replaced, not followed; a directory there is
    an error. Missing parents are made 0755, root-owned."""
    parts = _split(path)
    with _root_fd(root) as rootfd:
        try:
            _need_openat2(rootfd)
            dirfd = _open_dir(rootfd, parts[:-1], create=True)
            try:
                _replace(dirfd, parts[-1], data, mode, uid, gid)
            finally:
                os.close(dirfd)
        except OSError as err:
            raise exception.RootfsError(
                reason=f"cannot write {path} in guest root {root}: "
                f"{err.strerror or err}") from err


def _replace(dirfd: int, name: str, data: bytes, mode: int, uid: int,
             gid: int) -> None:
    tmp = f".{name}.pyct-{secrets.token_hex(6)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                 | os.O_CLOEXEC, 0o600, dir_fd=dirfd)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fchown(fd, uid, gid)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        os.rename(tmp, name, src_dir_fd=dirfd, dst_dir_fd=dirfd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dirfd)
        raise


def _hosts(spec: base.InstanceSpec) -> bytes:
    lines = ["127.0.0.1\tlocalhost",
             "::1\tlocalhost ip6-localhost ip6-loopback"]
    names = spec.hostname
    ips = [v.ip for v in sorted(spec.vifs, key=lambda v: v.device_index)
           if v.ip]
    for ip in ips:
        lines.append(f"{ip}\t{names}")
    if not ips:
        # Debian's convention: the hostname resolves without a network
        lines.append(f"127.0.1.1\t{names}")
    return ("\n".join(lines) + "\n").encode()


def guest_files(spec: base.InstanceSpec) -> dict[str, tuple[bytes, int]]:
    """The files a booting guest expects from its 'hypervisor', as
    guest path -> (content, mode)."""
    files = {"/etc/hostname": (f"{spec.hostname}\n".encode(), 0o644),
             "/etc/hosts": (_hosts(spec), 0o644)}
    first = [v for v in spec.vifs if v.device_index == 0] or \
        list(spec.vifs[:1])
    if first and first[0].dns_nameservers:
        # No nameservers: the image's own resolv.conf (or resolver) stays.
        text = "".join(f"nameserver {ns}\n"
                       for ns in first[0].dns_nameservers[:3])
        files["/etc/resolv.conf"] = (text.encode(), 0o644)
    # one checked line: never options or a second key (an x509 key pair
    # or a key stored unchecked gives no file)
    key = authorized_key.authorized_line(spec.key_data)
    if key:
        files["/root/.ssh/authorized_keys"] = (f"{key}\n".encode(), 0o600)
    return files


def inject(root: str, spec: base.InstanceSpec, uid: int = 0,
           gid: int = 0) -> None:
    """Write every ``guest_files`` file into the mounted root, owned by
    ``uid``:``gid`` (guest root's host ids). Each file is attempted even if
    an earlier one failed (a guest that broke its /root/.ssh still gets its
    hostname); any failure is then raised as one RootfsError naming them
    all."""
    errors = []
    for path, (data, mode) in sorted(guest_files(spec).items()):
        try:
            if path == "/root/.ssh/authorized_keys":
                ensure_dir(root, "/root/.ssh", 0o700, uid, gid)
            write_file(root, path, data, mode, uid, gid)
        except exception.RootfsError as err:
            errors.append(str(err.kwargs.get("reason", err.message)))
    if errors:
        raise exception.RootfsError(reason="; ".join(errors))


def _mount_id(fd: int) -> int:
    with open(f"/proc/self/fdinfo/{fd}") as f:
        for line in f:
            if line.startswith("mnt_id:"):
                return int(line.split()[1])
    raise OSError(errno.ENOTSUP, "no mnt_id in fdinfo")


def bind_readonly(root: str, guest_path: str, host_dir: str) -> None:
    """Bind ``host_dir`` read-only (nosuid, nodev, noexec) at
    ``guest_path`` inside ``root``, making the mount point safely first.
    Call it before the guest starts: its mount namespace copies the root's
    submounts (nsinit binds the root recursively) only at creation."""
    bind_into(root, guest_path, host_dir, km.MOUNT_ATTR_RDONLY
              | km.MOUNT_ATTR_NOSUID | km.MOUNT_ATTR_NODEV
              | km.MOUNT_ATTR_NOEXEC)


def bind_into(root: str, guest_path: str, host_dir: str,
              attrs: int) -> None:
    """Bind the mount at ``host_dir`` (that mount alone, not its
    submounts) at ``guest_path`` inside ``root`` with the mount
    attributes ``attrs`` (0: as it is), the mount point made safely."""
    parts = _split(guest_path)
    with _root_fd(root) as rootfd:
        tree = -1
        try:
            _need_openat2(rootfd)
            target = _open_dir(rootfd, parts, create=True)
            try:
                tree = km.clone_with_attrs(host_dir, attrs)
                # Onto the held fd, not a path: nothing the guest renames
                # now can move the mount point.
                km.move_mount(tree, target, "", km.MOVE_MOUNT_F_EMPTY_PATH
                              | km.MOVE_MOUNT_T_EMPTY_PATH)
            finally:
                os.close(target)
        except OSError as err:
            raise exception.RootfsError(
                reason=f"cannot bind {host_dir} at {guest_path} in "
                f"{root}: {err.strerror or err}") from err
        finally:
            if tree >= 0:
                os.close(tree)


def unbind(root: str, guest_path: str) -> None:
    """Undo ``bind_readonly`` (idempotent): detach whatever mount sits on
    ``guest_path`` inside ``root`` -- only a mount stacked inside the
    root, never the root's own."""
    parts = _split(guest_path)
    with _root_fd(root) as rootfd:
        try:
            _need_openat2(rootfd)
            base_id = _mount_id(rootfd)
            for _ in range(8):  # stacked binds from repeated attaches
                try:
                    # no RESOLVE_NO_XDEV: the target is the mounted dir
                    fd = files.openat2(
                        rootfd, "/" + "/".join(parts),
                        os.O_PATH | os.O_DIRECTORY,
                        files.RESOLVE_IN_ROOT | files.RESOLVE_NO_MAGICLINKS)
                except (FileNotFoundError, NotADirectoryError):
                    return
                try:
                    if _mount_id(fd) == base_id:
                        return
                    km.umount2(f"/proc/self/fd/{fd}", km.MNT_DETACH)
                finally:
                    os.close(fd)
        except OSError as err:
            raise exception.RootfsError(
                reason=f"cannot unbind {guest_path} in {root}: "
                f"{err.strerror or err}") from err
