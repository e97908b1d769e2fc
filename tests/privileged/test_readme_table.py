"""The README's "What works today" table is true.

Each row's command runs exactly as written, in the table's order, with the
README's own clouds.yaml (``OS_CLOUD=pyct-local``, password login against
pyct's noauth token issue) against an all-in-one with the container
driver: a ✅ row must succeed, a "not yet" row must fail with pyct's
"does not implement … yet" (HTTP 501) -- never with a Python error or a
404 that reads like a typo. When a feature lands, its row changes.
"""

from __future__ import annotations

import gzip
import os
import re
import shlex
import subprocess
import sys
import time

import pytest

from tests.fixtures.rootfs_images import layer_tar
from tests.privileged import e2e_fixtures
from tests.privileged.test_debian_ssh import free_pool

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
# after these commands, wait for the server to settle in this status
SETTLE = {"stop": "SHUTOFF", "start": "ACTIVE", "pause": "PAUSED",
          "unpause": "ACTIVE", "resize confirm": "ACTIVE",
          "resize revert": "ACTIVE", "suspend": "SUSPENDED",
          "resume": "ACTIVE", "rescue": "RESCUE", "unrescue": "ACTIVE",
          "shelve": "SHELVED_OFFLOADED", "unshelve": "ACTIVE"}


def table() -> list[tuple[str, bool]]:
    """(command, works) of every row, in order."""
    with open(os.path.join(REPO, "README.md")) as f:
        text = f.read()
    section = text.split("## What works today", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        found = re.match(r"\| `(openstack [^`]+)` \| (✅|not yet) \|", line)
        if found:
            rows.append((found.group(1), found.group(2) == "✅"))
    return rows


def test_table_lists_the_common_commands():
    commands = " ".join(c for c, _ in table())
    for needed in ("server create", "server delete", "server reboot",
                   "server stop", "server start", "server ssh",
                   "console log show", "image list", "network list",
                   "quota show", "server resize", "server image create",
                   "security group list", "floating ip create"):
        assert needed in commands, needed


@pytest.fixture(scope="module")
def env():
    env = e2e_fixtures.E2E("readme", {"network": {
        "pool_cidr": free_pool(), "floating_ip_range": "203.0.113.240/28"}})
    try:
        env.prepare()
        # m1.small as `make run` makes it (the resize row grows to it)
        env.dep.manage("flavor", "create", "m1.small", "--id", "2",
                       "--vcpus", "1", "--ram", "2048", "--disk", "20")
        env.dep.manage("image", "create-debian", "debian", "--if-missing")
        env.start()
        # the tarball the image create row uploads
        _rootfs_tarball(os.path.join(env.tmp, "rootfs.tar.gz"))
        with open(os.path.join(REPO, "etc", "pyct", "clouds.yaml")) as f:
            clouds = f.read().replace("127.0.0.1:8774",
                                      f"127.0.0.1:{env.dep.port}")
        env.clouds = os.path.join(env.tmp, "readme-clouds.yaml")
        with open(env.clouds, "w") as f:
            f.write(clouds)
        yield env
    finally:
        env.close()


def _rootfs_tarball(path: str) -> None:
    with open(path, "wb") as f:
        f.write(gzip.compress(layer_tar({
            "etc/hostname": b"upload\n",
            "hello.txt": b"from the upload\n"})))


def _run(env, command: str) -> subprocess.CompletedProcess:
    argv = shlex.split(command)
    run_env = dict(os.environ, OS_CLIENT_CONFIG_FILE=env.clouds,
                   OS_CLOUD="pyct-local",
                   PATH=f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    return subprocess.run([os.path.join(BIN, argv[0]), *argv[1:]],
                          cwd=env.tmp, env=run_env, capture_output=True,
                          text=True, timeout=180)


def _settle(env, command: str) -> None:
    words = command.split()
    action = " ".join(words[2:4]) if words[3:4] in (
        ["confirm"], ["revert"]) else " ".join(words[2:3])
    if words[1:2] == ["server"] and action in SETTLE:
        env.wait_status(words[-1], SETTLE[action])


def test_every_row_does_what_the_table_says(env):
    wrong = []
    for command, works in table():
        res = _run(env, command)
        if works and res.returncode != 0 and " ssh " in command:
            # sshd comes up a moment after ACTIVE
            deadline = time.monotonic() + 60
            while res.returncode != 0 and time.monotonic() < deadline:
                time.sleep(1)
                res = _run(env, command)
        out = res.stdout + res.stderr
        if works and res.returncode != 0:
            wrong.append(f"{command}: should work, failed:\n{out[-800:]}")
        elif not works and (res.returncode == 0
                            or "does not implement" not in out):
            wrong.append(f"{command}: should say 'does not implement "
                         f"… yet', got rc {res.returncode}:\n{out[-800:]}")
        if command.startswith("openstack keypair create") and works:
            with open(os.path.join(env.tmp, "k.pem"), "w") as f:
                f.write(res.stdout)
            os.chmod(os.path.join(env.tmp, "k.pem"), 0o600)
        if res.returncode == 0:
            _settle(env, command)
    assert not wrong, "\n\n".join(wrong)


def test_make_run_banner_lines_work_in_a_new_terminal(env):
    """What `make run` tells the user to paste works in a fresh shell."""
    out = subprocess.run(["make", "-n", "-C", REPO, "run",
                          f"STATE={env.tmp}/banner-state"], check=True,
                         capture_output=True, text=True).stdout
    pasted = [line[len('echo "  '):-1].replace("\\$", "$")
              for line in out.splitlines() if line.startswith('echo "  ')]
    assert [p.split()[0] for p in pasted] == ["export", "export",
                                              "openstack"], pasted
    script = "\n".join(pasted).replace(
        os.path.join(REPO, "etc", "pyct", "clouds.yaml"), env.clouds)
    res = subprocess.run(["env", "-i", "HOME=/root", "PATH=/usr/bin:/bin",
                          "bash", "-ec", script], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "", res.stdout  # no servers yet
