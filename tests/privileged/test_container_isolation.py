"""What a guest sees of the host, on the real kernel: no host file
descriptors, no host processes, its own PID 1 and hostname.
"""

from __future__ import annotations

import os

from tests.privileged.guest_tools import (  # noqa: F401 - fixtures
    busybox_image, driver, guest_exec, guests, init_pid, wait_for)

BOOT_LINE = "pyct busybox guest booting"


def test_no_host_fd_leaks_into_guest_init(driver, guests):
    spec = guests.boot()
    wait_for(lambda: BOOT_LINE in driver.get_console_output(spec),
             what="boot")
    out = guest_exec(driver, spec.uuid, [
        "/bin/sh", "-c",
        "for f in /proc/1/fd/*; do echo ${f##*/} $(readlink $f); done"]
    ).stdout.split("\n")
    fds = dict(line.split(" ", 1) for line in out if line)
    assert sorted(fds) == ["0", "1", "2"], fds
    # all three are the guest's console
    assert len(set(fds.values())) == 1, fds
    # the same, seen from the host: only the console pty
    host = {fd: os.readlink(f"/proc/{init_pid(driver, spec.uuid)}/fd/{fd}")
            for fd in os.listdir(f"/proc/{init_pid(driver, spec.uuid)}/fd")}
    assert sorted(host) == ["0", "1", "2"], host
    assert all(t.startswith("/dev/pts/") for t in host.values()), host


def test_guest_sees_only_itself(driver, guests):
    spec = guests.boot(hostname="pyct-iso-guest")
    other = guests.boot()
    out = guest_exec(driver, spec.uuid, [
        "/bin/sh", "-c",
        "for p in /proc/[0-9]*; do echo ${p##*/} $(cat $p/comm); done"]
    ).stdout
    procs = {int(pid): comm for pid, comm in
             (line.split(" ", 1) for line in out.splitlines() if line)}
    assert procs[1] == "init"
    # init, the shell running this loop, and the cat reading each comm
    # (busybox applets show their own names; no host process is visible)
    assert set(procs.values()) <= {"init", "sh", "cat"}, procs
    assert len(procs) <= 4, procs
    exe = guest_exec(driver, spec.uuid,
                     ["/bin/readlink", "/proc/1/exe"]).stdout.strip()
    assert exe == "/bin/busybox"
    cmdline = guest_exec(driver, spec.uuid,
                         ["/bin/cat", "/proc/1/cmdline"]).stdout
    # busybox init rewrites its argv[0] to "init"
    assert cmdline.split("\0")[0] in ("/sbin/init", "init")
    assert guest_exec(driver, spec.uuid, ["/bin/hostname"]).stdout \
        == "pyct-iso-guest\n"
    assert guest_exec(driver, other.uuid, ["/bin/hostname"]).stdout \
        == f"{other.hostname}\n"
    # the other guest's init is not visible either: one PID 1 each
    assert init_pid(driver, spec.uuid) != init_pid(driver, other.uuid)
    mounts = guest_exec(driver, spec.uuid, ["/bin/cat", "/proc/mounts"]
                        ).stdout
    # no host mount point is visible, nor a host path in overlayfs'
    # options (layers named by descriptor: rootfs.fdnames); the root need
    # not be listed first (mount ids order the table), as on a systemd VM
    targets = [line.split()[1] for line in mounts.splitlines()]
    assert "/" in targets and driver.test_tmp not in mounts
    assert not [t for t in targets if driver.test_tmp in t
                or t.startswith(("/home", "/var", "/boot"))], targets
    net = guest_exec(driver, spec.uuid, ["/bin/cat", "/proc/net/dev"]).stdout
    assert [line.split(":")[0].strip() for line in net.splitlines()[2:]] \
        == ["lo"]
