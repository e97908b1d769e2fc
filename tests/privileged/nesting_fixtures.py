"""An image for the nesting tests: the escape suite's agent image plus
Debian's runc and a tiny busybox bundle for it to run.

``build_nesting_image`` appends to the agent image (escape_fixtures):
``/usr/sbin/runc`` and the shared libraries it links (from the host, as
``ldd`` names them), and ``/nest``: a runc bundle whose rootfs is the
busybox tree and whose config.json is ``runc spec``'s default with the
process replaced (it prints ``NESTED_HELLO`` and its /proc/self/cgroup,
then sleeps) and an explicit ``cgroupsPath`` (``NESTED_CGROUP``, relative
to the guest's own groups as the guest sees them). The guest runs runc
itself (``RUNC_SCRIPT``), as any tenant would after copying it in.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile

from tests.privileged import escape_fixtures as ef

NESTING_IMAGE = "pyct-nesting-probe"
NESTED_CGROUP = "/pyct-nested"
NESTED_HELLO = "hello-from-the-nested-container"
RUNC = shutil.which("runc") or "/usr/sbin/runc"
RUNC_SCRIPT = """\
cd /nest
runc --root /run/runc run -d --pid-file /run/nest.pid nest1 \
  > /run/nest.log 2>&1 < /dev/null
echo "runc_rc=$?"
for i in $(seq 50); do grep -q "{hello}" /run/nest.log && break; usleep 100000; done
cat /run/nest.log
""".format(hello=NESTED_HELLO)
RUNC_STOP = """\
runc --root /run/runc kill nest1 KILL
for i in $(seq 50); do runc --root /run/runc delete nest1 2>/dev/null && break; usleep 100000; done
runc --root /run/runc list
"""


def _libraries(binary: str) -> list[str]:
    out = subprocess.run(["ldd", binary], capture_output=True, text=True,
                         check=True).stdout
    libs = []
    for line in out.splitlines():
        parts = line.split()
        path = parts[2] if "=>" in parts and len(parts) > 2 else parts[0]
        if path.startswith("/"):
            libs.append(path)
    return libs


def _bundle_config() -> bytes:
    tmp = tempfile.mkdtemp(prefix="pyct-nest-spec-")
    try:
        subprocess.run([RUNC, "spec"], cwd=tmp, check=True)
        with open(os.path.join(tmp, "config.json")) as f:
            config = json.load(f)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    config["process"]["terminal"] = False
    config["process"]["args"] = [
        "/bin/sh", "-c",
        f"echo {NESTED_HELLO}; cat /proc/self/cgroup; exec sleep 120"]
    config["root"]["readonly"] = False
    config["linux"]["cgroupsPath"] = NESTED_CGROUP
    return json.dumps(config, indent=1).encode()


def _add(tar: tarfile.TarFile, name: str, data: bytes,
         mode: int = 0o755) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 1_700_000_000
    tar.addfile(info, io.BytesIO(data))


def build_nesting_image(tar_path: str, probe: str) -> None:
    """The agent image plus runc, its libraries and the /nest bundle."""
    ef.build_probe_image(tar_path, probe)
    inner = tar_path + ".inner"
    from pyct_driver.virt.rootfs.busybox import build_busybox_rootfs
    build_busybox_rootfs(inner)
    try:
        with tarfile.open(tar_path, "a", format=tarfile.PAX_FORMAT) as tar:
            for path in [RUNC] + _libraries(RUNC):
                with open(os.path.realpath(path), "rb") as f:
                    _add(tar, path.lstrip("/"), f.read())
            _add(tar, "nest/config.json", _bundle_config(), 0o644)
            with tarfile.open(inner) as src:
                for member in src.getmembers():
                    member.name = "nest/rootfs/" + member.name.lstrip("./")
                    data = src.extractfile(member) if member.isfile() \
                        else None
                    tar.addfile(member, data)
    finally:
        os.unlink(inner)
