"""The v2 lane fails, never passes or skips, when its VM does not boot.

tools/v2lane/run.sh is given an image whose kernel is not a kernel: QEMU
exits at once (or is not even installed), no ``V2LANE-BOOTED`` line comes
back, and the lane must exit 97 with a message, leaving no temporary
directory behind.
"""

import glob
import os
import subprocess

TREE = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def test_unbootable_image_fails_the_lane(tmp_path):
    for name in ("vmlinuz", "initrd.img", "root.ext4"):
        (tmp_path / name).write_bytes(b"not a kernel\n")
    before = set(glob.glob("/tmp/pyct-v2lane.*"))
    env = dict(os.environ, V2LANE_ACCEL="tcg", V2LANE_TIMEOUT="60",
               V2LANE_SCRATCH="64M")
    res = subprocess.run(
        ["bash", os.path.join(TREE, "tools/v2lane/run.sh"), str(tmp_path),
         "tests/unit/test_v2lane_guard.py"],
        capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 97, (res.stdout, res.stderr)
    assert "did not boot" in res.stderr
    assert set(glob.glob("/tmp/pyct-v2lane.*")) == before
