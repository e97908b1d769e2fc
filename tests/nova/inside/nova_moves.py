"""Resize, cold migration and rescue of a pyct guest through Nova's API.

Runs INSIDE the Nova venv, as root, with the harness of
``nova_functional`` (Nova's in-process API, conductor, scheduler and
placement, ``compute_driver = pyct.PyctDriver``, ports on 10.249.1.0/24
that exist only in the guests) and Nova's ``allow_resize_to_same_host``:
pyct moves a guest only within its host. What the flavor gives a guest is
read from its real cgroup (memory limit, CPU shares or v2 weight) and its
root disk's size; what the guest keeps, from files written inside it.
"""

# Nova's functional package picks eventlet or native threads first
import nova.tests.functional  # noqa: F401,I100

import io
import os
import tarfile
import uuid

from nova.tests.functional.api import client

from nova_conformance import _memory_limit, _tarball
from nova_functional import IMAGE_ID, NovaWithPyct
from pyct_driver.nova import resize
from pyct_driver.virt.cgroups import v2

RESCUE_MARK = "etc/pyct-rescue"
# a stop or start with a busy machine takes longer than Nova's default 5 s
WAIT = 120


def _cpu_shares(pid):
    """The CPU shares of ``pid``'s cgroup as pyct wrote them (v1), or
    the v2 weight they became."""
    with open(f"/proc/{pid}/cgroup") as f:
        lines = [line.strip().split(":", 2) for line in f]
    for _, controllers, path in lines:
        if "cpu" in controllers.split(","):
            with open(f"/sys/fs/cgroup/cpu{path}/cpu.shares") as f:
                return int(f.read())
    path = next(p for _, c, p in lines if c == "")
    with open(f"/sys/fs/cgroup{path}/cpu.weight") as f:
        return int(f.read())


def _rescue_tarball():
    """The busybox root plus a file only the rescue image has."""
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(_tarball())) as src, \
            tarfile.open(fileobj=out, mode="w") as dst:
        for member in src.getmembers():
            dst.addfile(member, src.extractfile(member)
                        if member.isreg() else None)
        mark = tarfile.TarInfo(RESCUE_MARK)
        data = b"pyct-rescue-root\n"
        mark.size = len(data)
        dst.addfile(mark, io.BytesIO(data))
    return out.getvalue()


class PyctMovesThroughNovaAPI(NovaWithPyct):
    """Resize (confirm, revert, refused), cold migration and rescue."""

    # RPC casts stay casts, as between real services: a refusal on the
    # compute host must not reach the API call (nor be "rescheduled" by
    # a prep_resize that a cast-as-call would nest it in)
    CAST_AS_CALL = False

    def setUp(self):
        super().setUp()
        self.flags(allow_resize_to_same_host=True)
        self.small = self._create_flavor(name="pyct-small", memory_mb=128,
                                         vcpu=1, disk=1, ephemeral=0)
        self.big = self._create_flavor(name="pyct-big", memory_mb=256,
                                       vcpu=2, disk=2, ephemeral=0)

    def _boot(self, flavor):
        server = self._create_server(
            image_uuid=IMAGE_ID, flavor_id=flavor,
            networks=[{"port": self.neutron.port_1["id"]}])
        self.assertEqual((0, b""), self._in_guest(
            server, "sh", "-c", "echo pyct-data > /root/marker"))
        return server

    def _expected_shares(self, vcpus):
        shares = 1024 * vcpus
        with open("/proc/self/cgroup") as f:
            v1 = any("cpu" in line.split(":")[1].split(",") for line in f)
        return shares if v1 else v2.shares_to_weight(shares)

    def _assert_flavor_on_host(self, server, ram, vcpus, disk_gb):
        pid = self._guest_pid(server)
        self.assertIsNotNone(pid)
        self.assertEqual(ram << 20, _memory_limit(pid))
        self.assertEqual(self._expected_shares(vcpus), _cpu_shares(pid))
        disk = os.path.join(self.driver.pyct.roots.base_dir, "instances",
                            server["id"], "disk.img")
        self.assertEqual(disk_gb << 30, os.path.getsize(disk))
        self.assertIsNotNone(self._host_link(self.devname))

    def _resize(self, server, flavor):
        self.api.post_server_action(
            server["id"], {"resize": {"flavorRef": flavor}})
        return self._wait_for_state_change(server, "VERIFY_RESIZE",
                                           max_retries=WAIT)

    def _assert_data_kept(self, server):
        self.assertEqual(b"pyct-data\n",
                         self._guest_file(server, "/root/marker"))

    def _moving(self, server):
        return os.path.exists(self.driver.pyct.records.path(
            server["id"], resize.MOVE_MARK))

    def test_resize_to_bigger_flavor_then_confirm(self):
        """VERIFY_RESIZE already runs the guest with the new flavor's
        memory limit, CPU shares and root size; confirm keeps them."""
        server = self._boot(self.small)
        self._assert_flavor_on_host(server, 128, 1, 1)
        pid = self._guest_pid(server)
        server = self._resize(server, self.big)
        self.assertNotEqual(pid, self._guest_pid(server))  # stopped between
        self._assert_flavor_on_host(server, 256, 2, 2)
        self._assert_data_kept(server)
        self.assertTrue(self._moving(server))
        self.api.post_server_action(server["id"], {"confirmResize": None})
        server = self._wait_for_state_change(server, "ACTIVE",
                                             max_retries=WAIT)
        self._wait_for_migration_status(server, ["confirmed"])
        self.assertEqual("pyct-big", server["flavor"]["original_name"])
        self._assert_flavor_on_host(server, 256, 2, 2)
        self._assert_data_kept(server)
        self.assertFalse(self._moving(server))
        self._delete_server(server)
        self.assertEqual([], self.driver.list_instance_uuids())

    def test_resize_revert_restores_old_limits_and_keeps_data(self):
        server = self._boot(self.small)
        server = self._resize(server, self.big)
        self._assert_flavor_on_host(server, 256, 2, 2)
        self.api.post_server_action(server["id"], {"revertResize": None})
        self._wait_for_migration_status(server, ["reverted"])
        server = self._wait_for_state_change(server, "ACTIVE",
                                             max_retries=WAIT)
        self.notifier.wait_for_versioned_notifications(
            "instance.resize_revert.end", timeout=WAIT)
        self.assertEqual("pyct-small", server["flavor"]["original_name"])
        # the limits are the old flavor's; the disk keeps its grown size
        # (pyct does not shrink an ext4), as pyct's own revert
        self._assert_flavor_on_host(server, 128, 1, 2)
        self._assert_data_kept(server)
        self.assertFalse(self._moving(server))
        self.assertEqual([server["id"]], self.driver.list_instance_uuids())
        self._delete_server(server)

    def test_cold_migration_stays_on_this_host(self):
        """A migrate without a flavor change: the scheduler may pick this
        host again (supports_migrate_to_same_host); the guest restarts
        with the same limits and data."""
        server = self._boot(self.small)
        pid = self._guest_pid(server)
        self.api.post_server_action(server["id"], {"migrate": None})
        server = self._wait_for_state_change(server, "VERIFY_RESIZE",
                                             max_retries=WAIT)
        self.assertNotEqual(pid, self._guest_pid(server))
        self.assertEqual(self.compute.host,
                         server["OS-EXT-SRV-ATTR:host"])
        self.api.post_server_action(server["id"], {"confirmResize": None})
        server = self._wait_for_state_change(server, "ACTIVE",
                                             max_retries=WAIT)
        self._assert_flavor_on_host(server, 128, 1, 1)
        self._assert_data_kept(server)
        self._delete_server(server)

    def test_bad_resize_is_refused_and_server_unchanged(self):
        """A smaller root disk: Nova's API refuses it (400; the disk of
        the flavor booted with is the image's minimum). A flavor Nova
        takes but pyct refuses (quota:cpu_shares=0): the adapter refuses
        it before the guest stops, with Nova's InstanceFaultRollback. Each
        time the server stays ACTIVE on its flavor, its guest never
        stopped, and its limits are the old ones."""
        server = self._boot(self.big)
        pid = self._guest_pid(server)
        smaller = self._create_flavor(name="pyct-smaller-disk",
                                      memory_mb=512, vcpu=2, disk=1,
                                      ephemeral=0)
        err = self.assertRaises(
            client.OpenStackApiException, self.api.post_server_action,
            server["id"], {"resize": {"flavorRef": smaller}})
        self.assertEqual(400, err.response.status_code)
        self.assertIn("Flavor's disk is smaller", str(err))
        zero = self._create_flavor(name="pyct-zero-shares", memory_mb=512,
                                   vcpu=2, disk=2, ephemeral=0,
                                   extra_spec={"quota:cpu_shares": "0"})
        self.api.post_server_action(
            server["id"], {"resize": {"flavorRef": zero}})
        event = self._wait_for_action_fail_completion(
            server, "resize", "compute_resize_instance")
        self.assertIn("quota:cpu_shares", (event.get("traceback") or "")
                      + (event.get("details") or ""))
        self._wait_for_migration_status(server, ["error"])
        server = self._wait_for_state_change(server, "ACTIVE")
        self.assertEqual("pyct-big", server["flavor"]["original_name"])
        self.assertEqual(pid, self._guest_pid(server))
        self._assert_flavor_on_host(server, 256, 2, 2)
        self._assert_data_kept(server)
        self.assertFalse(self._moving(server))
        self._delete_server(server)

    def _rescue_image(self):
        image_id = str(uuid.uuid4())
        image = dict(self.glance.images[IMAGE_ID], id=image_id,
                     name="pyct-rescue")
        self.glance.images[image_id] = image
        self.glance._imagedata[image_id] = _rescue_tarball()
        return image_id

    def test_rescue_boots_rescue_root_and_unrescue_the_own_root(self):
        """Rescue: the guest runs the rescue image's root (its marker
        file) with its own root at /mnt, where a fix is written; unrescue:
        its own root again, with the test's file and the fix, and its
        port plugged again each time."""
        server = self._boot(self.small)
        rescue_image = self._rescue_image()
        self.api.post_server_action(server["id"], {"rescue": {
            "rescue_image_ref": rescue_image, "adminPass": "pyct-Rescue1"}})
        server = self._wait_for_state_change(server, "RESCUE",
                                             max_retries=WAIT)
        self.assertEqual(b"pyct-rescue-root\n",
                         self._guest_file(server, "/" + RESCUE_MARK))
        self.assertEqual(b"pyct-data\n",
                         self._guest_file(server, "/mnt/root/marker"))
        self.assertNotEqual(0, self._in_guest(
            server, "cat", "/root/marker")[0])
        self.assertEqual((0, b""), self._in_guest(
            server, "sh", "-c", "echo fixed > /mnt/root/fix"))
        self.assertIsNotNone(self._host_link(self.devname))
        self.assertEqual(128 << 20, _memory_limit(self._guest_pid(server)))

        self.api.post_server_action(server["id"], {"unrescue": None})
        server = self._wait_for_state_change(server, "ACTIVE",
                                             max_retries=WAIT)
        self._assert_data_kept(server)
        self.assertEqual(b"fixed\n", self._guest_file(server, "/root/fix"))
        self.assertNotEqual(0, self._in_guest(
            server, "cat", "/" + RESCUE_MARK)[0])
        self.assertIsNotNone(self._host_link(self.devname))
        self.assertFalse(self.driver.pyct.is_rescued(server["id"]))
        self._delete_server(server)
        self.assertEqual([], self.driver.list_instance_uuids())
