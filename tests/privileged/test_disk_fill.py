"""A guest that fills its disk, against the host and its neighbours, end to
end through the API.

Each test runs one all-in-one (container driver, SQLite) whose state
directory is a 4 GiB ext4 made for the test (a sparse file on a loop
device), so "full" is reachable in seconds; the file system, its loop
device and the file go even when the test fails. The guests run the
escape suite's agent image: every write and every attempt to hand blocks
back is a real guest process, a child of the guest's init.

On that file system the host reports floor(3.8 GiB free) - 1 GiB
(``reserved_host_disk_mb=512``, rounded up) = 2 GiB for instances, so two
m1.tiny (1 GiB) guests fit and a third gets NoValidHost. Then the host's
own files grow into everything not promised to guests, down to the reserve
(as the image cache, logs or the database may), and guest A fills its disk
from inside: with preallocated disks A writes only into blocks it already
holds, so the reserve stays free, the state dir stays writable and guest B
can still fill its own disk. A then frees its blocks inside its ext4, punches
holes, tries FITRIM -- and its disk file keeps every block.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile

from pyct_driver.db import services as db_services
from pyct_driver.db.engine import Database
from tests.privileged import escape_fixtures as ef
from tests.privileged.e2e_fixtures import E2E, loops_with, mounts_with
from tests.privileged.escape_fixtures import probe_binary  # noqa: F401
from tests.waiting import wait_for

GIB = 1 << 30
MIB = 1 << 20
FS_GIB = 4
RESERVE_MB = 512
SLACK = 32 * MIB  # pyct's own small writes while the test runs
AGENT_IMAGE = "disk-agent"
FILL = ("dd if=/dev/zero of=/fill bs=1M 2>&1; echo dd_rc=$?; sync; "
        "echo size=$(wc -c < /fill)")


@contextlib.contextmanager
def small_state_fs(tag: str, extra: dict):
    """A prepared, started all-in-one whose state dir is a fresh FS_GIB
    ext4; torn down (E2E.close) and the file system removed always."""
    back = tempfile.mkdtemp(prefix="pyct-diskfs-")
    image = os.path.join(back, "state.img")
    env = E2E(tag, extra)
    try:
        with open(image, "wb") as f:
            f.truncate(FS_GIB * GIB)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", image],
                       check=True, capture_output=True)
        os.makedirs(env.state_path)
        subprocess.run(["mount", "-o", "loop", image, env.state_path],
                       check=True, capture_output=True)
        env.prepare()
        env.start()
        yield env
    finally:
        try:
            env.close()
        finally:
            _drop_fs(env.state_path, back)


def _drop_fs(mountpoint: str, back: str) -> None:
    for mnt in reversed(mounts_with(mountpoint)):
        subprocess.run(["umount", "-l", mnt], capture_output=True)
    try:  # mount -o loop set autoclear: the device goes with the mount
        wait_for(lambda: not loops_with(back), timeout=10,
                 what="test file system's loop device freed")
    finally:
        for dev in loops_with(back):
            subprocess.run(["losetup", "-d", f"/dev/{dev}"],
                           capture_output=True)
        shutil.rmtree(back, ignore_errors=True)


def _free(path: str) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _node(env: E2E) -> dict:
    db = Database(f"sqlite:///{env.tmp}/pyct.sqlite")
    try:
        return db_services.compute_node_list(db)[0]
    finally:
        db.engine.dispose()


def _import_agent(env: E2E, probe: str) -> None:
    tar = os.path.join(env.tmp, "agent.tar")
    ef.build_probe_image(tar, probe)
    env.dep.manage("image", "import", AGENT_IMAGE, tar, "--property",
                   f"os_command_line={ef.AGENT_ARGV}")


def _boot_agent(env: E2E, name: str) -> str:
    """An ACTIVE agent guest whose /run/pyct is a tmpfs (commands and
    answers keep flowing when its disk is full); its uuid."""
    srv = env.cli_json("server", "create", "--image", AGENT_IMAGE,
                       "--flavor", "m1.tiny", "--nic", "none", "--wait",
                       name)
    assert srv["status"] == "ACTIVE", srv
    pid = env.init_pid(srv["id"])
    wait_for(lambda: os.path.isdir(f"/proc/{pid}/root/run/pyct"),
             what=f"agent of {name} ready")
    # the agent's own mv lands the answer in the new tmpfs
    assert "exit=0" in _run(env, srv["id"], "mount -t tmpfs -o size=4m "
                            "tmpfs /run/pyct")
    return srv["id"]


def _run(env: E2E, uuid: str, script: str, timeout: float = 30) -> str:
    return ef.agent_run(env.driver, uuid, script, timeout=timeout)


def _value(out: str, key: str) -> int:
    return int(next(line.split("=", 1)[1] for line in out.splitlines()
                    if line.startswith(f"{key}=")))


def _disk_held(env: E2E, uuid: str) -> int:
    path = os.path.join(env.base_dir, "roots", "instances", uuid, "disk.img")
    return os.stat(path).st_blocks * 512


def test_guest_filling_its_disk_cannot_fill_the_host(probe_binary):  # noqa: F811
    extra = {"compute": {"reserved_host_disk_mb": RESERVE_MB}}
    with small_state_fs("diskfill", extra) as env:
        _import_agent(env, probe_binary)
        a = _boot_agent(env, "fill-a")
        b = _boot_agent(env, "fill-b")
        # the third does not fit beside the two placed
        env.cli("server", "create", "--image", AGENT_IMAGE, "--flavor",
                "m1.tiny", "--nic", "none", "fill-c")
        env.wait_status("fill-c", "ERROR")
        fault = env.cli_json("server", "show", "fill-c")["fault"]
        assert fault["message"].startswith("No valid host was found"), fault
        wait_for(lambda: (_node(env)["local_gb"],
                          _node(env)["local_gb_used"]) == (2, 2),
                 timeout=15, what="report of 2 GiB, 2 GiB used")

        # the host's own files take everything not promised, but the reserve
        state = env.state_path
        reserve = RESERVE_MB * MIB
        filler = os.path.join(state, "host-growth")
        with open(filler, "wb") as f:
            os.posix_fallocate(f.fileno(), 0, _free(state) - reserve)
        assert abs(_free(state) - reserve) < SLACK
        # ...and the report follows: floor(2.5) - 1 GiB
        wait_for(lambda: _node(env)["local_gb"] == 1, timeout=15,
                 what="report of the grown host files")

        out = _run(env, a, FILL, timeout=180)
        assert "No space left on device" in out, out
        assert _value(out, "size") > 900 * MIB, out
        assert _free(state) >= reserve - SLACK, (_free(state), out)
        with open(os.path.join(state, "after-fill"), "wb") as f:
            f.write(b"x" * MIB)
            os.fsync(f.fileno())

        df = _run(env, b, "df -k / | tail -n 1").split()
        avail_b = int(df[3]) * 1024
        out = _run(env, b, FILL, timeout=180)
        assert "No space left on device" in out, out
        assert _value(out, "size") >= 0.9 * avail_b, (avail_b, out)
        assert _free(state) >= reserve - SLACK

        # A hands its blocks back -- inside its ext4, with a hole over the
        # file, with FITRIM on its root and on a file -- and fills again
        held = _disk_held(env, a)
        assert held >= GIB
        out = _run(env, a, "pyct-probe punch /fill; rm /fill; sync; "
                   "pyct-probe fitrim /; pyct-probe fitrim /etc/hostname")
        assert "punch rc=0" in out, out
        trims = [line for line in out.splitlines()
                 if line.startswith("fitrim")]
        assert len(trims) == 2 and all(
            "rc=-1" in t and ("errno=25" in t or "errno=1" in t)
            for t in trims), out
        assert _disk_held(env, a) == held
        out = _run(env, a, FILL, timeout=180)
        assert "No space left on device" in out, out
        assert _disk_held(env, a) == held
        assert _free(state) >= reserve - SLACK
        os.unlink(filler)


def test_disk_that_does_not_fit_fails_the_spawn_cleanly():
    # the scheduler overcommits 100x, so the host's own check is what
    # refuses the 8 GiB disk on a 4 GiB file system
    extra = {"compute": {"reserved_host_disk_mb": RESERVE_MB,
                         "disk_allocation_ratio": 100.0}}
    with small_state_fs("disknofit", extra) as env:
        env.dep.manage("flavor", "create", "m1.big", "--id", "8",
                       "--vcpus", "1", "--ram", "128", "--disk",
                       str(2 * FS_GIB))
        before = _free(env.state_path)
        env.cli("server", "create", "--image", "busybox", "--flavor",
                "m1.big", "--nic", "none", "big")
        env.wait_status("big", "ERROR", timeout=60)
        shown = env.cli_json("server", "show", "big")
        message = shown["fault"]["message"]
        assert message == ("root filesystem error: not enough free disk "
                           "space on the host for the 8 GiB root disk"), shown
        assert env.leftovers(shown["id"]) == []
        # nothing of the disk is left; the template and the unpacked
        # image are a few MiB
        assert _free(env.state_path) > before - 64 * MIB
        # a disk that fits still boots
        srv = env.cli_json("server", "create", "--image", "busybox",
                           "--flavor", "m1.tiny", "--nic", "none", "--wait",
                           "small")
        assert srv["status"] == "ACTIVE", srv
        assert _disk_held(env, srv["id"]) >= GIB
