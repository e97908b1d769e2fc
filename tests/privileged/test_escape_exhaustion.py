"""Host-wide kernel pools a guest could drain for everyone else: open
files and pseudo-terminals.

An adversarial review held 3,067 ptys in one guest (another project's
guest then got ENOSPC from /dev/ptmx) and opened files from one m1.small
guest until the host's fs.file-max was reached (every unprivileged host
process and every other guest then got ENFILE). Here guest A does the same
as real guest processes (the escape agent's children, holding what they
opened), and while A holds it all, guest B must still open files and ptys,
and so must an unprivileged host process. A's attempts must end at its own
bounds -- its devpts ``max=``, its memory cgroup -- never at a host-wide
limit (ENFILE, or ENOSPC from the shared pty pool).
"""

from __future__ import annotations

import errno
import math
import os
import re
import subprocess

import pytest

from pyct_driver.virt import host_resources
from tests.privileged import escape_fixtures as ef
from tests.privileged.escape_fixtures import (  # noqa: F401 - fixtures
    escape_image, probe_binary)
from tests.privileged.guest_tools import (  # noqa: F401 - fixtures
    Guests, busybox_image, driver, flavor, wait_for)

NOBODY = 65534
# A starts this many holders and waits until each reported or died
HOLD_SCRIPT = r"""
{setup}
ulimit -n $(ulimit -Hn)
per=$(( $(ulimit -Hn) - 16 ))
i=0; pids=""
while [ $i -lt {procs} ]; do
  # at the memory limit the OOM killer picks holders, not the agent
  (echo 1000 > /proc/self/oom_score_adj
   exec /usr/bin/pyct-probe hold {path} $per > /tmp/hold.$i 2>&1) &
  pids="$pids $!"; i=$((i+1))
done
n=0
for p in $pids; do
  while kill -0 $p 2>/dev/null && ! grep -q '^held' /tmp/hold.$n; do usleep 50000; done
  n=$((n+1))
done
cat /tmp/hold.* | grep -v progress
echo "holders=$(for p in $pids; do kill -0 $p 2>/dev/null && echo x; done | wc -l)"
"""
B_SCRIPT = r"""
exec 3</dev/null && echo "file=ok" || echo "file=failed"
/usr/bin/pyct-probe hold /dev/ptmx 3 > /tmp/b-pty 2>&1 &
p=$!
while ! grep -q '^held' /tmp/b-pty; do usleep 20000; done
kill $p
cat /tmp/b-pty
"""


def _held(text: str) -> list[tuple[int, int]]:
    """(count, errno) of every holder that reported."""
    return [(int(m.group(1)), int(m.group(2)))
            for m in re.finditer(r"^held (\d+) errno=(\d+)", text, re.M)]


def _host_unprivileged_open() -> str:
    """An unprivileged host process opens a file and a pty (host root
    would pass fs.file-max regardless: CAP_SYS_ADMIN)."""
    code = ("import os; os.close(os.open('/etc/hostname', os.O_RDONLY)); "
            "m, s = os.openpty(); print('ok')")
    res = subprocess.run(
        ["python3", "-c", code], capture_output=True, text=True, timeout=60,
        user=NOBODY, group=NOBODY, extra_groups=[], cwd="/")
    return res.stdout.strip() or res.stderr.strip()


@pytest.fixture(autouse=True)
def _host_is_tuned():
    """The host setup (tools/ensure-host.sh, devstack) sizes the shared
    pools; without it the host itself is misconfigured for pyct."""
    assert host_resources.tuning_warnings() == [], \
        "run tools/ensure-host.sh: " + "; ".join(
            host_resources.tuning_warnings())


def _attack(driver, fl, script: str):
    guests_ = Guests(driver)
    try:
        a = ef.boot_agent(guests_, fl)
        b = ef.boot_agent(guests_)
        out_a = ef.agent_run(driver, a.uuid, script, timeout=300)
        out_b = ef.agent_run(driver, b.uuid, B_SCRIPT, timeout=60)
        host = _host_unprivileged_open()
        return out_a, out_b, host
    finally:
        guests_.close()


def test_file_flood_stops_at_the_guests_memory_not_the_host(
        driver, busybox_image, escape_image):
    # more RAM than the old default fs.file-max (2,466,252 files here at
    # ~216 B each) needed, so the host's limit would have been reached
    memory_mb = 768
    limit = min(driver.guest_limits.nofile[1],
                os.sysconf("SC_OPEN_MAX") or 1 << 20)  # our own hard cap
    procs = math.ceil(memory_mb * 2 ** 20 / 200 / (limit - 16)) + 1
    out_a, out_b, host = _attack(
        driver, flavor(memory_mb=memory_mb),
        HOLD_SCRIPT.format(setup="", procs=procs, path="/dev/null"))
    held = _held(out_a)
    assert held, out_a
    assert all(err != errno.ENFILE for _, err in held), out_a
    total = sum(n for n, _ in held)
    # a real flood: millions of files (OOM-killed holders not counted)
    assert total > 1_000_000, out_a
    assert "file=ok" in out_b, out_b
    assert host == "ok", host


def test_pty_flood_stops_at_the_guests_bounds(driver, busybox_image,
                                              escape_image):
    # its own /dev/pts stops at devpts max=; a devpts it mounts itself
    # has no max, but every pty costs its memory cgroup ~3 KiB
    out_a, out_b, host = _attack(
        driver, flavor(memory_mb=128),
        HOLD_SCRIPT.format(setup="/usr/bin/pyct-probe hold /dev/ptmx "
                                 "1000000 > /tmp/own 2>&1 &\n"
                                 "while ! grep -q held /tmp/own; do "
                                 "usleep 20000; done; cat /tmp/own\n"
                                 "mkdir -p /tmp/pts2 && mount -t devpts -o "
                                 "newinstance,ptmxmode=0666 devpts /tmp/pts2",
                           procs=3, path="/tmp/pts2/ptmx"))
    own = re.search(r"^held (\d+) errno=(\d+)", out_a, re.M)
    assert own and int(own.group(1)) == driver.guest_limits.devpts_max, out_a
    assert int(own.group(2)) == errno.ENOSPC, out_a
    extra = _held(out_a)[1:]
    # the shared pool never ran dry (that would be ENOSPC here too)
    assert all(err != errno.ENOSPC for _, err in extra), out_a
    assert re.search(r"^held 3 errno=0", out_b, re.M), out_b
    assert "file=ok" in out_b, out_b
    assert host == "ok", host
