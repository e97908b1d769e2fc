"""A real Debian guest (systemd as PID 1) on the real kernel.

The image comes from ``build_debian_rootfs`` (debootstrap; cached under
/var/cache/pyct/images, so only the first run on a machine pays minutes).
The test writes a NoCloud seed into the guest's root just before its init
starts -- the config drive and metadata service are wired elsewhere -- and
checks what a tenant would: systemd reaches multi-user.target, the hostname,
SSH key, user data and the network's nameservers (resolv.conf) arrive, sshd
listens, a soft reboot (SIGRTMIN+3) shuts down cleanly and boots again
without re-running user data, and destroy
leaves nothing on the host. Boot timings are printed.
"""

from __future__ import annotations

import glob
import os
import time

from pyct_driver.virt.process import guest as guest_mod
from tests.privileged.debian_fixtures import (  # noqa: F401 - fixtures
    DRIVE_DNS, KEY, SEED_DNS, UD_LINE, debian_image, seeded)
from tests.privileged.guest_tools import (  # noqa: F401 - fixtures
    cgroup_dirs, driver, flavor, guest_exec, init_pid, make_spec, wait_for)


def _sh(drv, spec, script: str, check: bool = True) -> str:
    return guest_exec(drv, spec.uuid, ["/bin/sh", "-c", script],
                      check=check, timeout=20).stdout.strip()


def _listening_22(pid: int) -> bool:
    """sshd listens on :22, seen through the guest's own netns."""
    for name in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{name}") as f:
                rows = [line.split() for line in f.readlines()[1:]]
        except OSError:
            return False
        if any(r[1].endswith(":0016") and r[3] == "0A" for r in rows):
            return True
    return False


def _multi_user(drv, spec) -> bool:
    out = guest_exec(drv, spec.uuid, ["/bin/systemctl", "is-active",
                                      "multi-user.target"], check=False)
    return out.stdout.strip() == "active"


def _boot_times(drv, spec, start: float) -> tuple[float, float]:
    pid = init_pid(drv, spec.uuid)
    ssh = wait_for(lambda: _listening_22(pid) and time.monotonic(),
                   timeout=60, what="sshd listening", interval=0.01)
    multi = wait_for(lambda: _multi_user(drv, spec) and time.monotonic(),
                     timeout=60, what="multi-user.target", interval=0.02)
    return multi - start, ssh - start


def _system_state(drv, spec) -> str:
    state = _sh(drv, spec, "systemctl is-system-running --wait", check=False)
    if state != "running":
        failed = _sh(drv, spec, "systemctl --failed --no-legend; "
                     "journalctl -b --no-pager -p warning | tail -n 30",
                     check=False)
        return f"{state}: {failed}"
    return state


def test_debian_guest_boots_configures_reboots(driver, debian_image, seeded):
    guests, specs = seeded
    driver.soft_reboot_timeout = 30
    spec = make_spec(flavor(memory_mb=512, root_gb=2), image_id=debian_image,
                     hostname="pyct-deb-guest")
    specs[spec.uuid] = (spec,)
    guests.specs.append(spec)
    start = time.monotonic()
    driver.spawn(spec)
    spawned = time.monotonic() - start
    to_multi, to_ssh = _boot_times(driver, spec, start)
    print(f"\nfirst boot: spawn {spawned * 1000:.0f}ms, multi-user.target "
          f"{to_multi:.2f}s, sshd listening {to_ssh:.2f}s")

    assert _system_state(driver, spec) == "running"
    assert _sh(driver, spec, "cat /proc/1/comm") == "systemd"
    assert _sh(driver, spec, "hostname") == spec.hostname
    assert _sh(driver, spec, "cat /etc/hostname") == spec.hostname
    assert KEY in _sh(driver, spec, "cat /root/.ssh/authorized_keys")
    assert _sh(driver, spec, "stat -c %a /root/.ssh/authorized_keys") \
        == "600"
    # the seed's nameservers, as a DHCP client would have them
    assert _sh(driver, spec, "cat /etc/resolv.conf").splitlines() == [
        f"nameserver {a}" for a in SEED_DNS]
    wait_for(lambda: _sh(driver, spec, "cat /root/ud-ran 2>/dev/null",
                         check=False) == "hello", timeout=20,
             what="user data ran")
    ssh = _sh(driver, spec, "ss -Hltn 'sport = :22'")
    assert ":22" in ssh, ssh
    # the instance's own host key, made at first boot; none from the image
    keys = _sh(driver, spec, "ls /etc/ssh/ | grep ssh_host_").split()
    assert keys == ["ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"]
    machine_id = _sh(driver, spec, "cat /etc/machine-id")
    assert len(machine_id) == 32, machine_id
    # the guest sees only its own groups in its cgroup tree
    tracker = _sh(driver, spec, "grep name=systemd /proc/1/cgroup")
    assert tracker.endswith(":name=systemd:/init.scope"), tracker
    # ... and cannot lift its own limits (v1 has no delegation boundary)
    ro = _sh(driver, spec, "(echo 1 > /sys/fs/cgroup/memory/memory."
             "limit_in_bytes) 2>&1; echo rc=$?", check=False)
    assert "Read-only file system" in ro and not ro.endswith("rc=0"), ro
    console = driver.get_console_output(spec)
    assert "BEGIN SSH HOST KEY FINGERPRINTS" in console
    assert console.count(UD_LINE) == 1

    old = init_pid(driver, spec.uuid)
    old_start = guest_mod.proc_start_time(old)
    start = time.monotonic()
    driver.reboot(spec, hard=False)
    reboot_took = time.monotonic() - start
    assert not guest_mod.is_same_process(old, old_start)
    to_multi2, to_ssh2 = _boot_times(driver, spec, start)
    print(f"soft reboot: shutdown+restart {reboot_took:.2f}s, "
          f"multi-user.target {to_multi2:.2f}s, sshd {to_ssh2:.2f}s")
    # clean: systemd went down on its own, well before the kill timeout,
    # stopping its units in order (the journal persists in the root)
    assert reboot_took < driver.soft_reboot_timeout / 2, reboot_took
    journal = _sh(driver, spec, "journalctl -o cat --no-pager "
                  "| grep -E '^Stopped target (multi-user|local-fs)\\.target'")
    assert journal.splitlines() == [
        "Stopped target multi-user.target - Multi-User System.",
        "Stopped target local-fs.target - Local File Systems."], journal
    assert _system_state(driver, spec) == "running"
    assert _sh(driver, spec, "cat /etc/machine-id") == machine_id
    # user data runs once per instance, not once per boot
    assert driver.get_console_output(spec).count(UD_LINE) == 1

    driver.destroy(spec)
    guests.specs.remove(spec)
    assert not cgroup_dirs(driver, spec.uuid)
    assert not [line for line in open("/proc/mounts") if spec.uuid in line]
    assert not os.path.exists(driver.records.dir(spec.uuid))
    assert not glob.glob(os.path.join(driver.roots.base_dir, "instances",
                                      spec.uuid))
    assert spec.uuid not in driver.list_instances()


def test_debian_guest_takes_config_drive(driver, debian_image, seeded):
    guests, specs = seeded
    spec = make_spec(flavor(memory_mb=512, root_gb=2), image_id=debian_image,
                     hostname="pyct-cd-guest")
    specs[spec.uuid] = (spec, True)
    guests.specs.append(spec)
    start = time.monotonic()
    driver.spawn(spec)
    to_multi, to_ssh = _boot_times(driver, spec, start)
    print(f"\nconfig-drive boot: multi-user.target {to_multi:.2f}s, "
          f"sshd {to_ssh:.2f}s")
    console = driver.get_console_output(spec)
    assert "metadata source: configdrive" in console
    assert f"pyct-agent: nameservers: {' '.join(DRIVE_DNS)}" in console
    assert _sh(driver, spec, "cat /etc/resolv.conf").splitlines() == [
        f"nameserver {a}" for a in DRIVE_DNS]
    assert _sh(driver, spec, "hostname") == spec.hostname
    assert KEY in _sh(driver, spec, "cat /root/.ssh/authorized_keys")
    wait_for(lambda: _sh(driver, spec, "cat /root/ud-ran 2>/dev/null",
                         check=False) == "hello", timeout=20,
             what="user data ran")
