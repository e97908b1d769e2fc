"""Host-side writes into a running guest's root while the guest itself
swaps path components between directories and symlinks.

The driver writes a guest's key, hostname, hosts and resolv.conf with
``inject.inject(root_path, spec)`` on the host (at spawn, and again on
every start). Here the running guest fights it from inside: the probe
exchanges /root/.ssh with a symlink to the host canary directory's path by
renameat2(RENAME_EXCHANGE) in a tight loop, and a busybox loop flips
/root/.ssh.d between a directory and a symlink to /, while the host
re-injects 10,000 times. No write may land outside the guest's root: the host
canaries (a tree shaped like /etc and ~/.ssh, the host's own /etc files,
no stray /authorized_keys at the host's /) must be unchanged.
"""

from __future__ import annotations

import os
import time

from pyct_driver import exception
from pyct_driver.virt import base
from pyct_driver.virt.rootfs import inject
from tests.privileged import escape_fixtures as ef
from tests.privileged.escape_fixtures import (  # noqa: F401 - fixtures
    escape_image, host_canaries, probe_binary)
from tests.privileged.guest_tools import (  # noqa: F401 - fixtures
    busybox_image, driver, guest_exec, guests)

ROUNDS = 10_000
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPyctRace pyct@race"
SSH_SWAP = ("while :; do mkdir -p /root/.ssh.d; mv /root/.ssh.d /root/.x; "
            "ln -s / /root/.ssh.d; rm /root/.ssh.d; rm -rf /root/.x; done")


def _assert_swapping(root: str) -> None:
    """The probe's renameat2 exchanger flips /root/.ssh between the
    directory and the symlink (seen both ways from the host)."""
    for name in ("root/.ssh",):
        path = os.path.join(root, name)
        seen: set[bool] = set()
        deadline = time.monotonic() + 20
        while len(seen) < 2 and time.monotonic() < deadline:
            seen.add(os.path.islink(path))
        assert len(seen) == 2, f"/{name} is not being swapped"


def test_reinject_while_guest_swaps_dirs_and_symlinks(driver, guests,
                                                      escape_image,
                                                      host_canaries):
    spec = ef.boot_agent(guests)
    vif = base.VifSpec(port_id="p", network_id="n", mac="fa:16:3e:00:00:07",
                       ip="10.241.251.7", prefixlen=24,
                       gateway="10.241.251.1",
                       dns_nameservers=("10.241.251.1",))
    inj = base.InstanceSpec(uuid=spec.uuid, name=spec.name,
                            hostname="pyct-race", flavor=spec.flavor,
                            image_id=spec.image_id, key_data=KEY,
                            vifs=(vif,))
    root = driver._root_path(spec.uuid)
    target = os.path.join(host_canaries.dir, "etc")
    # /root/.ssh is upper-only (image layers have no /root/.ssh), so the
    # kernel lets it be exchanged with a symlink to the host canary's
    # path any number of times; a busybox loop also swaps /root/.ssh.d
    # with a symlink to / for extra pressure
    out = ef.agent_run(driver, spec.uuid,
                       f"mkdir -p /root/.ssh && ln -s {target} "
                       "/root/.ssh-link && echo ready")
    assert "ready" in out, out
    guest_exec(driver, spec.uuid, ["/bin/sh", "-c", SSH_SWAP],
               background=True, guests=guests)
    # the exchanger runs as a child of the guest's init (seccomp and all)
    out = ef.agent_run(driver, spec.uuid, "/usr/bin/pyct-probe swap /root "
                       ".ssh .ssh-link >/dev/null 2>&1 & echo started")
    assert "started" in out, out
    # the swapper must be flipping before the host starts writing, or a
    # slow start (nsenter under load) leaves nothing racing the writes
    _assert_swapping(root)
    ok = failed = 0
    start = time.monotonic()
    for _ in range(ROUNDS):
        try:
            inject.inject(root, inj)
            ok += 1
        except exception.RootfsError:
            failed += 1
    elapsed = time.monotonic() - start
    # the .ssh swapper was running all along
    assert [p for p in guests.procs if p.poll() is None]
    assert ok + failed == ROUNDS
    # still racing at the end, so every write raced the swaps (how many
    # landed depends on the scheduler)
    _assert_swapping(root)
    print(f"{ok} injects landed, {failed} refused, {elapsed:.1f}s")
    # freeze the swappers first: walking a tree that changes under the
    # walk would follow a just-swapped symlink out of the root
    driver.pause(spec)
    # what landed is inside the guest's root (found without following
    # any guest symlink): in /root/.ssh, wherever the exchange left that
    # directory, or under a path a symlink named inside the root
    landed = [os.path.join(d, f)
              for d, _dirs, files in os.walk(root, followlinks=False)
              for f in files if f == "authorized_keys"]
    assert landed
    # no temp file of ours anywhere in the canary tree (host_canaries
    # checks the rest after the guest is gone)
    assert not [n for _d, _s, files in os.walk(host_canaries.dir)
                for n in files if ".pyct-" in n]
