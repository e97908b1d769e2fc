"""The way into a guest (``exec_in_guest``, ``pyct-manage server exec``)
is not a way out of it.

An adversarial review found that a process started in a guest with
``nsenter -a`` (as the tests' own helper did, and as an operator would)
has no seccomp filter: guest root could PTRACE_ATTACH it and make it run
keyctl and bpf, and pidfd_getfd stole its host descriptors. Here commands
started through the confined path are checked from the host (seccomp,
no_new_privs, capabilities, ids, cgroups, descriptors) and attacked from
inside by guest root as a real guest process (the escape agent): the
injected keyctl must meet the guest's filter, the stolen descriptors must
be the command's own pipes. The operator's command, ``pyct-manage server
exec``, runs against a real deployment: output, input, exit code, audit.
"""

from __future__ import annotations

import errno
import os
import re
import subprocess

import pytest

from pyct_driver.virt.process.guestinit import caps
from tests.privileged import escape_fixtures as ef
from tests.privileged.e2e_fixtures import E2E
from tests.privileged.escape_fixtures import (  # noqa: F401 - fixtures
    escape_image, probe_binary)
from tests.privileged.guest_tools import (  # noqa: F401 - fixtures
    Guests, busybox_image, driver, flavor, guest_exec, init_pid, wait_for)
from tests.services import BIN

TARGET = "/run/pyct/target"


def _status(text: str) -> dict[str, str]:
    return dict(line.split(":\t", 1) for line in text.splitlines()
                if ":\t" in line)


@pytest.fixture(scope="module")
def pair(driver, busybox_image, escape_image, probe_binary):
    guests_ = Guests(driver)
    try:
        yield (ef.boot_agent(guests_),
               ef.boot_agent(guests_, flavor(**{"pyct:privileged": "true"})),
               guests_)
    finally:
        guests_.close()


@pytest.mark.parametrize("which", ["unprivileged", "privileged"])
def test_exec_runs_confined_as_the_guests_own_processes(driver, pair,
                                                        which):
    spec = pair[0] if which == "unprivileged" else pair[1]
    status = _status(guest_exec(driver, spec.uuid,
                                ["cat", "/proc/self/status"]).stdout)
    assert status["Seccomp"].strip() == "2"
    assert status["NoNewPrivs"].strip() == "1"
    uid = status["Uid"].split()
    assert uid[0] == "0"  # guest root, inside
    init = init_pid(driver, spec.uuid)
    with open(f"/proc/{init}/uid_map") as f:
        init_map = f.read()
    assert guest_exec(driver, spec.uuid,
                      ["cat", "/proc/self/uid_map"]).stdout == init_map
    if which == "privileged":
        assert int(status["CapEff"], 16) == caps.mask(caps.DOCKER_DEFAULT)
    # no host descriptor: stdio pipes only (and ls's own directory fd)
    fds = guest_exec(driver, spec.uuid,
                     ["sh", "-c", "ls -l /proc/$$/fd"]).stdout
    targets = re.findall(r"\d+ -> (\S+)", fds)
    assert len(targets) == 3 and all(t.startswith("pipe:") for t in targets), \
        fds
    # in the guest's cgroups (charged to it) and its pid namespace
    proc = guest_exec(driver, spec.uuid, ["sleep", "60"], background=True,
                      guests=pair[2])
    try:
        with open(f"/proc/{proc.pid}/cgroup") as f:
            assert spec.uuid in f.read()
        for ns in ("pid", "mnt", "net", "user", "uts", "ipc", "cgroup"):
            assert os.readlink(f"/proc/{proc.pid}/ns/{ns}") == \
                os.readlink(f"/proc/{init}/ns/{ns}"), ns
    finally:
        proc.kill()
        proc.wait(10)


def test_guest_root_cannot_turn_an_exec_against_the_host(driver, pair):
    """Guest root (a real guest process) attaches to an exec'd command,
    makes it run keyctl and steals its descriptors: the command's own
    seccomp filter refuses the keyctl, and all there is to steal are the
    command's own pipes."""
    spec = pair[0]
    target = ef.guest_file(driver, spec.uuid, TARGET)
    proc = guest_exec(driver, spec.uuid, [
        "sh", "-c", f"echo $$ > {TARGET}.tmp && mv {TARGET}.tmp {TARGET} "
                    "&& exec sleep 300"], background=True, guests=pair[2])
    try:
        wait_for(lambda: os.path.exists(target), what="exec'd target")
        with open(target) as f:
            nspid = int(f.read())
        out = ef.agent_run(driver, spec.uuid,
                           f"/usr/bin/pyct-probe inject {nspid}\n"
                           f"/usr/bin/pyct-probe getfd {nspid}\n")
    finally:
        proc.kill()
        proc.wait(10)
    injected = re.search(r"^injected rc=(-?\d+) errno=(\d+)", out, re.M)
    assert injected, out
    assert (int(injected.group(1)), int(injected.group(2))) == (
        -1, errno.EPERM), out
    stolen = re.findall(r"^stole (\d+) (\S+)", out, re.M)
    assert stolen and all(t.startswith("pipe:") or t == "/dev/null"
                          for _, t in stolen), out
    assert {int(fd) for fd, _ in stolen} <= {0, 1, 2}, out


@pytest.fixture(scope="module")
def deployment():
    env = E2E("exec")
    try:
        env.prepare()
        env.start()
        yield env
    finally:
        env.close()


def _manage(env: E2E, *args: str,
            data: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [os.path.join(BIN, "pyct-manage"), "--config-file", env.dep.conf,
         "server", "exec", *args],
        input=data, capture_output=True, text=True, timeout=60,
        env=dict(os.environ, SUDO_USER="test-operator"))


def test_pyct_manage_server_exec(deployment):
    env = deployment
    env.cli("server", "create", "--image", "busybox", "--flavor", "m1.tiny",
            "--nic", "none", "--wait", "vm-exec")
    uuid = env.server("vm-exec").id
    res = _manage(env, "vm-exec", "--", "cat", "/proc/self/status")
    assert res.returncode == 0, res.stderr
    status = _status(res.stdout)
    assert status["Seccomp"].strip() == "2", res.stdout
    assert status["NoNewPrivs"].strip() == "1"
    # stdin in, stdout and the command's exit code out; by uuid too
    res = _manage(env, uuid, "--", "sh", "-c", "cat; exit 3",
                  data="through stdin\n")
    assert (res.returncode, res.stdout) == (3, "through stdin\n"), res
    # the audit trail names the operator, the server and the command
    audit = res.stderr + res.stdout
    assert "server exec by test-operator in server " + uuid in audit, audit
    assert "sh -c 'cat; exit 3'" in audit and "exit 3" in audit, audit
    res = _manage(env, "no-such-server", "--", "true")
    assert res.returncode == 1
    assert "could not be found" in res.stderr
    env.cli("server", "delete", "--wait", "vm-exec")
