"""Guest root against the host: every classic container escape, tried from
inside a running guest, must fail -- and leave the host unchanged.

One module fixture boots two hostile guests (A and B) whose PID 1 is the
escape agent (escape_fixtures), so every attempt runs as a real guest
process: a descendant of the guest's init, with the namespaces, cgroups,
seccomp filter and user namespace the launcher gave it. Around all the
attempts it snapshots the host canaries (escape_fixtures.Canaries); each
test then asserts its attempt failed *and* that the host did not change.
Probes that would change the host if they worked are made harmless: a
sysctl is written with its current value, sysrq-trigger is opened for
writing but nothing is written, release_agent gets its current value,
kexec_load/init_module get arguments that fail past the permission check.
"""

from __future__ import annotations

import errno
import hashlib
import os
import select
import shutil
import signal
import stat
import subprocess
import time

import pytest

from tests.privileged import escape_fixtures as ef
from tests.privileged.escape_fixtures import (  # noqa: F401 - fixtures
    escape_image, host_canaries, probe_binary)
from tests.privileged.guest_tools import (  # noqa: F401 - fixtures
    Guests, _unified, busybox_image, driver, flavor, guest_exec, guests,
    init_pid, wait_for)

SECRET = "pyct-secret-of-A-4242"
DENIED_ERRNOS = (errno.EPERM, errno.EACCES, errno.ENOSYS)
SYSCALLS = ("keyctl", "add_key", "request_key", "bpf", "kexec_load",
            "kexec_file_load", "init_module", "finit_module",
            "open_by_handle_at", "perf_event_open", "userfaultfd",
            "io_uring_setup", "syslog", "settimeofday", "swapoff")
# comm names a guest may legitimately show in its own /proc
GUEST_COMMS = {"sh", "cat", "usleep", "ls", "grep", "pyct-probe", "sleep",
               "busybox", "init", "find", "dd", "wc", "mv"}

_TRY = """t() { if sh -c "$2" >/dev/null 2>&1; then echo "$1=ALLOWED";
else echo "$1=denied"; fi; }
p() { if [ -e "$2" ]; then t "$1" "$3"; else echo "$1=absent"; fi; }
"""

PROC_SCRIPT = r"""
t core_pattern 'v=$(cat /proc/sys/kernel/core_pattern) && echo "$v" > /proc/sys/kernel/core_pattern'
p modprobe /proc/sys/kernel/modprobe 'v=$(cat /proc/sys/kernel/modprobe) && echo "$v" > /proc/sys/kernel/modprobe'
t vm_sysctl 'v=$(cat /proc/sys/vm/overcommit_memory) && echo "$v" > /proc/sys/vm/overcommit_memory'
p sysrq_trigger /proc/sysrq-trigger 'dd of=/proc/sysrq-trigger count=0 conv=notrunc'
p kcore_read /proc/kcore '[ "$(dd if=/proc/kcore bs=1 count=1 2>/dev/null | wc -c)" -eq 1 ]'
p uevent_helper /sys/kernel/uevent_helper 'v=$(cat /sys/kernel/uevent_helper) && echo "$v" > /sys/kernel/uevent_helper'
t own_memory_limit 'v=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes) && echo "$v" > /sys/fs/cgroup/memory/memory.limit_in_bytes'
t own_pids_limit 'v=$(cat /sys/fs/cgroup/pids/pids.max) && echo "$v" > /sys/fs/cgroup/pids/pids.max'
t own_devices_list 'echo a > /sys/fs/cgroup/devices/devices.allow'
"""

CGROUP_SCRIPT = r"""
n=0
for o in rdma none,name=pyct-escape memory devices; do
  n=$((n+1)); d=/tmp/pyct-cg$n; mkdir -p $d
  if mount -t cgroup -o $o cgroup $d 2>/dev/null; then
    echo "mount $o=ALLOWED"
    if [ -e $d/release_agent ]; then
      v=$(cat $d/release_agent)
      if echo "$v" > $d/release_agent 2>/dev/null; then
        echo "release_agent $o=ALLOWED"
      else echo "release_agent $o=denied"; fi
    else echo "release_agent $o=absent"; fi
    umount $d
  else echo "mount $o=denied"; fi
done
"""

# Run in both guests: what pyct:nesting opens (fresh proc and sysfs
# mounts, writable cgroup hierarchies, sub-groups) must not reach the
# host's files, the guest's own limits, devices or the hidden full proc.
NEST_SCRIPT = r"""
C=/sys/fs/cgroup; export C
mkdir -p /tmp/fp /tmp/fs
if mount -t proc proc /tmp/fp 2>/dev/null; then echo "fresh_proc=ALLOWED"; P=/tmp/fp; else echo "fresh_proc=denied"; P=/proc; fi
export P
t fresh_core_pattern 'v=$(cat $P/sys/kernel/core_pattern) && echo "$v" > $P/sys/kernel/core_pattern'
t fresh_vm_sysctl 'v=$(cat $P/sys/vm/overcommit_memory) && echo "$v" > $P/sys/vm/overcommit_memory'
p fresh_sysrq $P/sysrq-trigger 'dd of=$P/sysrq-trigger count=0 conv=notrunc'
p fresh_kcore $P/kcore '[ "$(dd if=$P/kcore bs=1 count=1 2>/dev/null | wc -c)" -eq 1 ]'
t fresh_sysfs_rw 'unshare -nm sh -c "mount -t sysfs -o rw sysfs /tmp/fs && grep -q \" /tmp/fs sysfs rw\" /proc/mounts"'
t fresh_sysfs_ro 'unshare -nm mount -t sysfs -o ro sysfs /tmp/fs'
t fresh_uevent_helper 'unshare -nm sh -c "mount -t sysfs -o ro sysfs /tmp/fs && v=\$(cat /tmp/fs/kernel/uevent_helper) && echo \"\$v\" > /tmp/fs/kernel/uevent_helper"'
t hidden_umount_run 'umount /run || umount -l /run'
t hidden_umount_run_newns 'unshare -m sh -c "umount -l /run && ls /run/proc/1"'
t hidden_umount_run_userns 'unshare -Urm sh -c "umount -l /run && ls /run/proc/1"'
p own_cpu_quota $C/cpu/cpu.cfs_quota_us 'v=$(cat $C/cpu/cpu.cfs_quota_us) && echo "$v" > $C/cpu/cpu.cfs_quota_us'
p own_memory_max $C/memory.max 'v=$(cat $C/memory.max) && echo "$v" > $C/memory.max'
p own_pids_max_v2 $C/pids.max 'v=$(cat $C/pids.max) && echo "$v" > $C/pids.max'
p sub_devices_allow $C/devices 'mkdir -p $C/devices/pyct-x && echo a > $C/devices/pyct-x/devices.allow'
p sub_cpu_over_parent $C/cpu 'mkdir -p $C/cpu/pyct-x && echo 100000000 > $C/cpu/pyct-x/cpu.cfs_quota_us'
mkdir -p /tmp/pyct-cgm
mount -t cgroup -o memory cgroup /tmp/pyct-cgm 2>/dev/null
sh -c 'for f in $(find $C /tmp/pyct-cgm -name cgroup.procs 2>/dev/null); do echo $$ > $f 2>/dev/null && echo "moved-into $f"; done; exec sleep 600' </dev/null >/tmp/moved 2>&1 &
usleep 300000; cat /tmp/moved
"""
# The hierarchies pyct puts each guest in (v1); a guest task must stay
# below its group in each.
MANAGED = {"cpu", "cpuacct", "memory", "pids", "freezer", "blkio",
           "devices", "cpuset", "name=systemd"}

MKNOD_SCRIPT = r"""
t block_{tag} 'mknod /tmp/pyct-b{tag} b {major} {minor} && [ "$(dd if=/tmp/pyct-b{tag} bs=512 count=1 2>/dev/null | wc -c)" -gt 0 ]'
t devshm_block_{tag} 'mknod /dev/shm/pyct-b{tag} b {major} {minor} && [ "$(dd if=/dev/shm/pyct-b{tag} bs=512 count=1 2>/dev/null | wc -c)" -gt 0 ]'
"""
MEM_SCRIPT = r"""
t dev_mem 'mknod /tmp/pyct-mem c 1 1 && [ "$(dd if=/tmp/pyct-mem bs=1 count=1 2>/dev/null | wc -c)" -eq 1 ]'
t dev_kmsg_write 'mknod /tmp/pyct-kmsg c 1 11 && echo pyct-escape > /tmp/pyct-kmsg'
"""

HOSTPROC_SCRIPT = r"""
t proc_entry '[ -e /proc/{pid} ]'
t signal 'kill -CONT {pid}'
/usr/bin/pyct-probe ptrace {pid}
for p in /proc/[0-9]*; do
  c=$(cat $p/comm 2>/dev/null) || continue
  echo "COMM ${{p##*/}} $c"
  if [ "$c" = pyct-hostmark ]; then kill -CONT ${{p##*/}} && echo SIGNALLED_VIA_PROC; fi
done
"""

CROSS_SCRIPT = r"""
for p in /proc/{apid}/root/root/secret-a {aupper}/root/secret-a {aroot}/root/secret-a /proc/*/root/root/secret-a; do
  cat "$p" 2>/dev/null
done
[ -e /proc/{apid} ] && echo "A_PROC_VISIBLE"
find / -xdev -name secret-a 2>/dev/null
mkdir -p /tmp/pyct-mnt
if mount --bind {aupper} /tmp/pyct-mnt 2>/dev/null; then cat /tmp/pyct-mnt/root/secret-a; umount /tmp/pyct-mnt; fi
for m in $(cut -d' ' -f5 /proc/self/mountinfo); do cat "$m/root/secret-a" 2>/dev/null; done
"""

EXE_SCRIPT = r"""
p={nspid}
printf '#!/bin/sh\necho pwned\n' > /tmp/evil
if [ "$(head -c 4 /proc/$p/exe 2>/dev/null | wc -c)" -eq 4 ]; then echo "exe_read=ALLOWED"; else echo "exe_read=denied"; fi
if cat /tmp/evil > /proc/$p/exe 2>/dev/null; then echo "exe_write_live=ALLOWED"; else echo "exe_write_live=denied"; fi
( if exec 3< /proc/$p/exe; then echo held > /tmp/held; else echo no > /tmp/held; exit 0; fi
  while [ ! -e /tmp/go ]; do usleep 10000; done
  if cat /tmp/evil > /proc/self/fd/3; then echo ALLOWED > /tmp/fdres; else echo denied > /tmp/fdres; fi ) </dev/null >/dev/null 2>&1 &
while [ ! -e /tmp/held ]; do usleep 10000; done
echo "exe_hold_fd=$(cat /tmp/held)"
if cat /bin/true > /proc/1/exe 2>/dev/null; then echo "init_exe_write=ALLOWED"; else echo "init_exe_write=denied"; fi
"""


def _sha(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _flags(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.rpartition("=")
        if sep and value in ("ALLOWED", "denied", "absent", "held", "no"):
            out[key] = value
    return out


def _probe_lines(text: str) -> dict[str, tuple[int, int]]:
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1].startswith("rc="):
            out[parts[0]] = (int(parts[1][3:]), int(parts[2][6:]))
    return out


def _root_disk() -> tuple[int, int]:
    dev = os.stat("/").st_dev
    return os.major(dev), os.minor(dev)


def _openable_block_device() -> tuple[int, int] | None:
    """A block device host root can open (this host refuses even root an
    open of its mounted root disk, so that alone would prove nothing)."""
    for name in sorted(os.listdir("/dev")):
        path = os.path.join("/dev", name)
        st = os.lstat(path)
        if stat.S_ISBLK(st.st_mode):
            try:
                os.close(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
            except OSError:
                continue
            return os.major(st.st_rdev), os.minor(st.st_rdev)
    return None


def _upper(driver, uuid: str) -> str:
    return os.path.join(driver.roots.base_dir, "instances", uuid, "disk",
                        "upper")


def _id_map(pid: int) -> list[tuple[int, int, int]]:
    with open(f"/proc/{pid}/uid_map") as f:
        return [tuple(int(x) for x in line.split()) for line in f]


def _start_hostmark(tmp: str) -> subprocess.Popen:
    """A host process with a recognisable comm ("pyct-hostmark")."""
    link = os.path.join(tmp, "pyct-hostmark")
    os.symlink("/bin/sleep", link)
    return subprocess.Popen([link, "600"], stdin=subprocess.DEVNULL)


def _host_binary(canaries: ef.Canaries, probe: str) -> str:
    """A host "binary" in the canary tree: a copy of the probe."""
    hostbin = os.path.join(canaries.dir, "pyct-hostbin")
    with open(probe, "rb") as src, open(hostbin, "wb") as dst:
        dst.write(src.read())
    os.chmod(hostbin, 0o755)
    return hostbin


def _exe_attack(driver, uuid: str, hostbin: str, results: dict) -> None:
    """A host binary (a copy in the canary dir) runs inside guest A's
    namespaces without exec'ing; A tries to overwrite it through
    /proc/<pid>/exe, live and after it exited (CVE-2019-5736's method)."""
    results["hostbin_sha"] = _sha(hostbin)
    helper = subprocess.Popen([hostbin, "enter", str(init_pid(driver, uuid))],
                              stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                              text=True)
    try:
        ready, _, _ = select.select([helper.stdout], [], [], 10)
        line = helper.stdout.readline() if ready else ""
        assert line.startswith("ready "), f"helper did not enter: {line!r}"
        nspid = int(line.split()[1])
        out = ef.agent_run(driver, uuid, EXE_SCRIPT.format(nspid=nspid))
        results["exe"] = out
    finally:
        with open(f"/proc/{helper.pid}/task/{helper.pid}/children") as f:
            for child in f.read().split():
                os.kill(int(child), signal.SIGKILL)
        helper.kill()
        helper.wait(timeout=10)
    ef.guest_write(driver, uuid, "/tmp/go", "")
    fdres = ef.guest_file(driver, uuid, "/tmp/fdres")
    if results["exe"].find("exe_hold_fd=held") >= 0:
        # the shell creates the file before it writes the verdict
        wait_for(lambda: os.path.exists(fdres) and os.path.getsize(fdres),
                 what="fd write attempt")
        with open(fdres) as f:
            results["exe"] += f"exe_write_after_exit={f.read().strip()}\n"
    results["hostbin_sha_after"] = _sha(hostbin)


def _task_cgroups(driver, uuid: str) -> dict[int, list[str]]:
    """Host view of the cgroups of every task in the guest's pid
    namespace: pid -> its /proc/<pid>/cgroup lines outside the guest's
    groups (in the hierarchies pyct puts guests in)."""
    want = os.readlink(f"/proc/{init_pid(driver, uuid)}/ns/pid")
    group = f"/{driver.cgroups.parent}/{uuid}"
    out = {}
    for entry in os.listdir("/proc"):
        try:
            if not entry.isdigit() or \
                    os.readlink(f"/proc/{entry}/ns/pid") != want:
                continue
            with open(f"/proc/{entry}/cgroup") as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        out[int(entry)] = [
            line for line in lines
            if (line.startswith("0::") and _unified()
                or MANAGED.intersection(line.split(":")[1].split(",")))
            and not (line.split(":", 2)[2] + "/").startswith(group + "/")]
    return out


@pytest.fixture(scope="module", params=["plain", "nesting"])
def attack(request, driver, busybox_image, escape_image, probe_binary):
    """Run every attempt once in guests of a plain flavor, then of one
    with pyct:nesting; returns the outputs and the host diff."""
    can = ef.Canaries([os.path.join("*", driver.cgroups.parent)])
    guests_ = Guests(driver)
    results: dict = {}
    mark = _start_hostmark(can.dir)
    layer_busybox = os.path.join(driver.images.layers(escape_image)[0],
                                 "bin", "busybox")
    results["layer_sha"] = _sha(layer_busybox)
    try:
        fl = flavor(**({"pyct:nesting": "true"}
                       if request.param == "nesting" else {}))
        results["nesting"] = request.param == "nesting"
        a = ef.boot_agent(guests_, fl)
        b = ef.boot_agent(guests_, fl)
        # after the (trusted) boots, before any attempt: the driver's
        # parent group exists now
        can.take()
        run_a = (lambda s: ef.agent_run(driver, a.uuid, s))
        run_b = (lambda s: ef.agent_run(driver, b.uuid, s))
        results["proc"] = run_a(_TRY + PROC_SCRIPT)
        results["cgroup"] = run_a(CGROUP_SCRIPT)
        maj, mnr = _root_disk()
        mk = _TRY + MKNOD_SCRIPT.format(tag="root", major=maj, minor=mnr)
        other = _openable_block_device()
        if other:
            mk += MKNOD_SCRIPT.format(tag="open", major=other[0],
                                      minor=other[1])
        results["mknod"] = run_a(mk + MEM_SCRIPT)
        results["syscalls"] = run_a("".join(
            f"/usr/bin/pyct-probe sys {name}\n" for name in SYSCALLS))
        results["hostproc"] = run_a(_TRY + HOSTPROC_SCRIPT.format(
            pid=mark.pid))
        results["hostmark_alive"] = mark.poll() is None
        # A's private file, then B hunts for it
        run_a(f"echo {SECRET} > /root/secret-a; chmod 600 /root/secret-a")
        results["cross"] = run_b(CROSS_SCRIPT.format(
            apid=init_pid(driver, a.uuid), aupper=_upper(driver, a.uuid),
            aroot=driver._root_path(a.uuid)))
        # guest root's files, seen from the host
        run_a("touch /root/owned-by-guest-root")
        run_b("touch /root/owned-by-guest-root")
        results["owners"] = [
            os.stat(os.path.join(_upper(driver, s.uuid), "root",
                                 "owned-by-guest-root")).st_uid
            for s in (a, b)]
        results["maps"] = [_id_map(init_pid(driver, s.uuid)) for s in (a, b)]
        results["nest"] = run_a(_TRY + NEST_SCRIPT)
        results["task_cgroups"] = _task_cgroups(driver, a.uuid)
    finally:
        results["close_error"] = None
        try:
            guests_.close()
        except AssertionError as err:
            results["close_error"] = str(err)
        mark.kill()
        mark.wait(timeout=10)
        results["layer_sha_after"] = _sha(layer_busybox)
        results["host_changes"] = can.changes() if can.before else \
            ["no snapshot taken: the guests did not boot"]
        shutil.rmtree(can.dir, ignore_errors=True)
    yield results


def _host_unchanged(attack) -> None:
    assert not attack["host_changes"], "host changed:\n" + "\n".join(
        attack["host_changes"])
    assert attack["close_error"] is None, attack["close_error"]


# item -> its path on the host; an item this kernel lacks (no sysrq, no
# kcore...) may be absent in the guest too, never reachable
PROC_ITEMS = {"core_pattern": "/proc/sys/kernel/core_pattern",
              "modprobe": "/proc/sys/kernel/modprobe",
              "vm_sysctl": "/proc/sys/vm/overcommit_memory",
              "sysrq_trigger": "/proc/sysrq-trigger",
              "kcore_read": "/proc/kcore",
              "uevent_helper": "/sys/kernel/uevent_helper",
              "own_memory_limit": None, "own_pids_limit": None,
              "own_devices_list": None}


@pytest.mark.parametrize("item", sorted(PROC_ITEMS))
def test_proc_and_sys_writes_fail(attack, item):
    flags = _flags(attack["proc"])
    host_path = PROC_ITEMS[item]
    if host_path and not os.path.exists(host_path):
        assert flags.get(item) in ("absent", "denied"), attack["proc"]
    else:
        assert flags.get(item) == "denied", attack["proc"]
    _host_unchanged(attack)


def test_cgroup_v1_mount_cannot_set_release_agent(attack):
    flags = _flags(attack["cgroup"])
    written = [k for k, v in flags.items()
               if k.startswith("release_agent") and v == "ALLOWED"]
    assert not written, attack["cgroup"]
    # a new v1 hierarchy (rdma, a named one) is where CVE-2022-0492 wrote
    assert flags.get("mount none,name=pyct-escape") == "denied", \
        attack["cgroup"]
    _host_unchanged(attack)


def test_mknod_host_block_device_cannot_be_read(attack):
    flags = _flags(attack["mknod"])
    blocks = {k: v for k, v in flags.items() if "block_" in k}
    assert blocks and set(blocks.values()) == {"denied"}, attack["mknod"]
    _host_unchanged(attack)


def test_mknod_dev_mem_and_kmsg_fail(attack):
    flags = _flags(attack["mknod"])
    assert flags.get("dev_mem") == "denied", attack["mknod"]
    assert flags.get("dev_kmsg_write") == "denied", attack["mknod"]
    _host_unchanged(attack)


@pytest.mark.parametrize("name", SYSCALLS)
def test_dangerous_syscalls_fail(attack, name):
    res = _probe_lines(attack["syscalls"])
    assert name in res, attack["syscalls"]
    rc, err = res[name]
    assert rc == -1, f"{name} succeeded in the guest: {attack['syscalls']}"
    assert err in DENIED_ERRNOS, \
        f"{name} reached the kernel past its permission check " \
        f"(errno {err} {os.strerror(err)})"
    _host_unchanged(attack)


def test_host_process_invisible_unsignallable_unptraceable(attack):
    out = attack["hostproc"]
    flags = _flags(out)
    assert flags.get("proc_entry") == "denied", out
    assert flags.get("signal") == "denied", out
    rc, err = _probe_lines(out)["ptrace"]
    assert rc == -1 and err == errno.ESRCH, out
    assert "SIGNALLED_VIA_PROC" not in out
    assert attack["hostmark_alive"]
    _host_unchanged(attack)


def test_guest_proc_shows_no_host_process(attack):
    comms = [line.split(" ", 2)[2] for line in attack["hostproc"].splitlines()
             if line.startswith("COMM ")]
    assert comms and set(comms) <= GUEST_COMMS, comms
    pids = [int(line.split()[1]) for line in attack["hostproc"].splitlines()
            if line.startswith("COMM ")]
    assert max(pids) < 1000, pids  # its own small pid space, no host pids


def test_other_instance_files_unreachable(attack):
    out = attack["cross"]
    assert SECRET not in out, out
    assert "A_PROC_VISIBLE" not in out
    _host_unchanged(attack)


def test_proc_exe_of_host_binary_cannot_be_overwritten(
        driver, guests, escape_image, probe_binary, host_canaries):
    """CVE-2019-5736's method against anything started from the host
    inside a guest: the guest opens /proc/<pid>/exe of a host binary
    (here a copy in the canary tree) while it runs in the guest's
    namespaces, and writes through the fd once it has exited."""
    hostbin = _host_binary(host_canaries, probe_binary)
    host_canaries.take()
    spec = ef.boot_agent(guests)
    results: dict = {}
    _exe_attack(driver, spec.uuid, hostbin, results)
    flags = _flags(results["exe"])
    assert results["hostbin_sha_after"] == results["hostbin_sha"], \
        results["exe"]
    assert flags.get("exe_write_live") == "denied", results["exe"]
    assert flags.get("exe_write_after_exit", "denied") == "denied", \
        results["exe"]
    # Reading it is not asserted: a dumpable host process that joined the
    # guest's user namespace lets guest root open its exe read-only (as
    # with plain ``nsenter``; runc's exec makes itself non-dumpable). The
    # write through that fd is what CVE-2019-5736 needed, and it fails.
    if flags.get("exe_hold_fd") == "held":
        assert flags.get("exe_write_after_exit") == "denied", results["exe"]
    assert flags.get("init_exe_write") == "denied", results["exe"]


def test_init_exe_write_leaves_image_and_host_binaries_alone(attack):
    # the write itself may land in the guest's own copy-up; the shared
    # image layer and the host's binaries must not change
    assert attack["layer_sha_after"] == attack["layer_sha"]
    _host_unchanged(attack)


def test_guest_root_is_not_host_root(attack):
    owners = attack["owners"]
    assert 0 not in owners, f"guest root's files are host uid {owners}"
    assert owners[0] != owners[1], owners


def test_instances_have_disjoint_id_ranges(attack):
    ranges = []
    for id_map in attack["maps"]:
        assert id_map, "no uid map"
        for _inside, outside, count in id_map:
            assert not outside <= 0 < outside + count, id_map
            ranges.append((outside, outside + count))
    ranges.sort()
    for (_s1, e1), (s2, _e2) in zip(ranges, ranges[1:]):
        assert e1 <= s2, f"overlapping host id ranges {ranges}"


def test_self_exe_of_nsentered_process(driver, guests, escape_image,
                                       host_canaries):
    """A process started from the host side (nsenter, as guest_exec does)
    writing through its own /proc/self/exe reaches at most the guest's
    copy of the binary: the image layer and host binaries stay as they
    were."""
    spec = guests.boot()
    layer = os.path.join(driver.images.layers(spec.image_id)[0], "bin",
                         "busybox")
    before = _sha(layer), _sha("/usr/bin/nsenter"), _sha("/bin/sh")
    for script in ("cat /bin/true > /proc/self/exe",
                   "cat /bin/true > /proc/1/exe",
                   "cat /bin/true > /proc/$PPID/exe"):
        guest_exec(driver, spec.uuid, ["/bin/sh", "-c", script], check=False)
    time.sleep(0.05)
    assert (_sha(layer), _sha("/usr/bin/nsenter"), _sha("/bin/sh")) == before


NEST_ITEMS = ("fresh_core_pattern", "fresh_vm_sysctl", "fresh_sysrq",
              "fresh_kcore", "fresh_sysfs_rw", "fresh_uevent_helper",
              "hidden_umount_run", "hidden_umount_run_newns",
              "hidden_umount_run_userns", "own_cpu_quota", "own_memory_max",
              "own_pids_max_v2", "sub_devices_allow", "sub_cpu_over_parent")


@pytest.mark.parametrize("item", NEST_ITEMS)
def test_what_nesting_opens_reaches_nothing(attack, item):
    """A fresh proc or sysfs, the cgroup hierarchies and sub-groups: no
    host sysctl or kernel file, no own limit, no device, and the full
    proc hidden under /run stays out of reach (its cover is locked, also
    in the guest's own new mount and user namespaces)."""
    flags = _flags(attack["nest"])
    assert flags.get(item) in ("denied", "absent"), attack["nest"]
    _host_unchanged(attack)


def test_fresh_proc_and_sysfs_only_with_nesting(attack):
    """What nesting opens on purpose, and only with the spec: a fresh
    proc, and a fresh sysfs read-only (a nested network namespace's)."""
    flags = _flags(attack["nest"])
    expected = "ALLOWED" if attack["nesting"] else "denied"
    assert flags.get("fresh_proc") == expected, attack["nest"]
    assert flags.get("fresh_sysfs_ro") == expected, attack["nest"]


def test_guest_tasks_stay_in_the_guests_cgroups(attack):
    """Writing its pid into every cgroup.procs it can find (its mounts, a
    fresh mount of a hierarchy) leaves a task inside its own group."""
    moved = attack["task_cgroups"]
    assert moved and not any(moved.values()), (moved, attack["nest"])
    if attack["nesting"]:
        assert "moved-into" in attack["nest"], attack["nest"]
