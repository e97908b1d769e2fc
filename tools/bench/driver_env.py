"""A ContainerDriver in a throw-away state dir, for the driver benchmarks.

``DriverEnv`` is a context manager: it makes a ``pyct-bench-*`` temp dir
and a cgroup parent ``pyct-bench-<random>``, configures and starts the
container driver (which starts its launcher), builds the busybox rootfs
tarball and imports it as image ``busybox`` (so later spawns find the image
cached). On exit -- normal, exception or Ctrl-C -- it destroys every
instance it spawned, stops the launcher, removes the cgroup parent in every
hierarchy, unmounts what is left under the temp dir, detaches loop devices
backed there and deletes the dir.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid as uuid_mod

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from pyct_driver import conf as pyct_conf  # noqa: E402
from pyct_driver.virt import base  # noqa: E402
from pyct_driver.virt.container import ContainerDriver  # noqa: E402
from pyct_driver.virt.process.caller.client import LauncherClient  # noqa: E402
from pyct_driver.virt.rootfs.busybox import build_busybox_rootfs  # noqa

import teardown  # noqa: E402

IMAGE = "busybox"
# m1.tiny: 1 vCPU, 512 MiB, 1 GiB root disk
TINY = base.FlavorSpec(vcpus=1, memory_mb=512, root_gb=1)


class DriverEnv:
    def __init__(self, tmp_prefix: str = "pyct-bench-") -> None:
        self.tmp = tempfile.mkdtemp(prefix=tmp_prefix)
        self.parent = f"pyct-bench-{uuid_mod.uuid4().hex[:8]}"
        self.tarball = os.path.join(self.tmp, "busybox.tar")
        self.live: dict[str, base.InstanceSpec] = {}
        self.driver: ContainerDriver | None = None

    def __enter__(self) -> "DriverEnv":
        try:
            conf = pyct_conf.CONF
            conf([], project="pyct-bench", default_config_files=[])
            conf.set_override("state_path", os.path.join(self.tmp, "state"))
            conf.set_override("cgroup_parent", self.parent,
                              group="container")
            self.driver = ContainerDriver(conf)
            self.driver.init_host("bench")
            build_busybox_rootfs(self.tarball)
            self.driver.import_image(IMAGE, self.tarball)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def new_spec(self, flavor: base.FlavorSpec = TINY,
                 privileged: bool = False) -> base.InstanceSpec:
        uid = str(uuid_mod.uuid4())
        # the compute manager allocates ranges in the database; here a
        # counter above its default base will do
        self._ranges = getattr(self, "_ranges", 0) + 1
        id_range = None if privileged else (
            (3 << 30) + self._ranges * 65536, 65536)
        return base.InstanceSpec(uuid=uid, name=f"bench-{uid[:8]}",
                                 hostname=f"bench-{uid[:8]}", flavor=flavor,
                                 image_id=IMAGE, id_range=id_range,
                                 privileged=privileged)

    def spawn(self, spec: base.InstanceSpec) -> None:
        # tracked before the call: a half-done spawn is destroyed too
        self.live[spec.uuid] = spec
        self.driver.spawn(spec)

    def destroy(self, spec: base.InstanceSpec) -> None:
        self.driver.destroy(spec)
        self.live.pop(spec.uuid, None)

    def guest_pid(self, spec: base.InstanceSpec) -> int:
        return int(self.driver.launcher.status(spec.uuid)["pid"])

    def close(self) -> None:
        if self.driver is not None:
            for spec in list(self.live.values()):
                try:
                    self.destroy(spec)
                except Exception as err:  # keep cleaning the rest
                    print(f"WARNING: destroy {spec.uuid}: {err}",
                          file=sys.stderr)
        if self.driver is not None and self.driver.views is not None:
            self.driver.views.stop()  # the lxcfs it started
        try:
            LauncherClient(os.path.join(self.tmp, "state", "container",
                                        "launcher")).shutdown()
        except Exception as err:
            print(f"WARNING: launcher shutdown: {err}", file=sys.stderr)
        teardown.report_leftovers("cgroups",
                                  teardown.remove_cgroup_parent(self.parent))
        teardown.report_leftovers("mounts", teardown.unmount_under(self.tmp))
        teardown.report_leftovers("loop devices",
                                  teardown.detach_loops_backed_under(
                                      self.tmp))
        shutil.rmtree(self.tmp, ignore_errors=True)
