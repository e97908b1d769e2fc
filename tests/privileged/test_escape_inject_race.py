"""Host-side writes into a running guest's root while the guest itself
swaps path components between directories and symlinks.

The driver writes a guest's key, hostname, hosts and resolv.conf with
``inject.inject(root_path, spec)`` on the host (at spawn, and again on
every start). Here the running guest fights it from inside: a busybox
loop swaps /root/.ssh between a directory and a symlink to /, and the
probe swaps /etc with a symlink to the host canary directory's path by
renameat2(RENAME_EXCHANGE) in a tight loop, while the host re-injects
10,000 times. No write may land outside the guest's root: the host
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
    busybox_image, driver, guest_exec, guests, init_pid)

ROUNDS = 10_000
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPyctRace pyct@race"
SSH_SWAP = ("while :; do mv /root/.ssh /root/.ssh.d; ln -s / /root/.ssh; "
            "rm /root/.ssh; mv /root/.ssh.d /root/.ssh; done")


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
    # /etc comes from the image (a lower dir): overlayfs without
    # redirect_dir refuses to rename it, so the guest first makes it an
    # upper-only copy it can swap
    ef.agent_run(driver, spec.uuid,
                 "cp -a /etc /etc.new && rm -rf /etc && mv /etc.new /etc && "
                 f"mkdir -p /root/.ssh && ln -s {target} /etc-link")
    guest_exec(driver, spec.uuid, ["/bin/sh", "-c", SSH_SWAP],
               background=True, guests=guests)
    guest_exec(driver, spec.uuid, ["/usr/bin/pyct-probe", "swap", "/", "etc",
                                   "etc-link"], background=True, guests=guests)
    time.sleep(0.2)
    ok = failed = 0
    start = time.monotonic()
    for _ in range(ROUNDS):
        try:
            inject.inject(root, inj)
            ok += 1
        except exception.RootfsError:
            failed += 1
    elapsed = time.monotonic() - start
    # the swappers were running all along (both still alive)
    assert len([p for p in guests.procs if p.poll() is None]) == 2
    assert ok + failed == ROUNDS
    assert ok > 0, "no write ever landed: the race was not exercised"
    # /etc was the dangling link at times: those writes were refused
    assert failed > 0, "the /etc swap never hit: the race was not exercised"
    print(f"{ok} injects landed, {failed} refused, {elapsed:.1f}s")
    # what landed is inside the guest: its /root/.ssh, or its own / when
    # .ssh was the symlink to / at that moment
    pid = init_pid(driver, spec.uuid)
    landed = [p for p in (f"/proc/{pid}/root/root/.ssh/authorized_keys",
                          f"/proc/{pid}/root/root/.ssh.d/authorized_keys",
                          f"/proc/{pid}/root/authorized_keys")
              if os.path.exists(p)]
    assert landed
    # no temp file of ours anywhere in the canary tree (host_canaries
    # checks the rest after the guest is gone)
    assert not [n for _d, _s, files in os.walk(host_canaries.dir)
                for n in files if ".pyct-" in n]
