"""Nova's own virt driver conformance tests against pyct's adapter.

Runs INSIDE the Nova venv (tools/nova/venv.sh), as root, on the real
kernel: ``PyctConformance`` is Nova's ``_VirtDriverTestCase`` from the
nova wheel with ``driver_module`` set to the adapter, whose
``ContainerDriver`` boots real guests. Three things are adapted, each to
what a pyct host really gets, never to make a check pass:

* the test image ``cedef40a-...`` (an ``ami`` in Nova's Glance fixture)
  holds a busybox root file system tarball as a ``raw``/``bare`` image;
* ``network_info`` has Nova's shape but VIF type ``bridge`` (Nova's test
  uses ``ovs``, which pyct refuses by design) on bridge ``pyctnv0`` and
  addresses of 10.249.0.0/16 (this suite's test range), never routed on
  the host: only the guest's namespace holds them;
* [pyct] state_path is a fresh directory, disks sparse, and Nova's
  fixture that forbids reading /sys is off (pyct reads its cgroups);
* ``test_unrescue_rescued_instance`` runs without its ``os.unlink`` mock
  (it fakes libvirt's unrescue.xml; here it would keep pyct from deleting
  the rescue root's files): the same body, on a host that can unlink.

Strict: Nova's tests swallow ``NotImplementedError`` (and log it); this
module records each such method and fails the test when the adapter
declares it supported (``DECLARED``). The methods each test found missing
are appended to the JSON-lines file named by ``PYCT_CONFORMANCE_RESULTS``.
"""

# Nova's test package picks eventlet or native threads
# (OS_NOVA_DISABLE_EVENTLET_PATCHING) before anything imports eventlet
import nova.tests.unit  # noqa: F401,I100

import inspect
import json
import logging
import os
import shutil
import tempfile
from unittest import mock

import fixtures

from nova import exception
from nova import test
from nova.compute import power_state
from nova.network import model as network_model
from nova.tests import fixtures as nova_fixtures
from nova.tests.unit import utils as test_utils
from nova.tests.unit.virt import test_virt_drivers
from nova.virt import fake

from pyct_driver.nova import conf as pyct_conf
from pyct_driver.virt.rootfs import busybox

CONF = test_virt_drivers.CONF

IMAGE_ID = "cedef40a-ed67-4d10-800e-17455edce175"
BRIDGE = "pyctnv0"
# What the adapter implements; a NotImplementedError from one is a failure
DECLARED = {
    "init_host", "list_instances", "list_instance_uuids", "spawn",
    "destroy", "reboot", "power_off", "power_on", "pause", "unpause",
    "suspend", "resume", "get_info", "get_available_resource",
    "get_available_nodes", "update_provider_tree", "get_console_output",
    "attach_interface", "detach_interface", "cleanup", "plug_vifs",
    "unplug_vifs", "get_host_ip_addr", "resume_state_on_host_boot",
    "instance_exists", "get_num_instances", "set_admin_password",
    "get_host_uptime", "poll_rebooting_instances", "snapshot",
    "migrate_disk_and_power_off", "finish_migration", "confirm_migration",
    "finish_revert_migration", "rescue", "unrescue",
}
_TARBALL = {}


def _tarball():
    if "data" not in _TARBALL:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "busybox.tar")
            busybox.build_busybox_rootfs(path)
            with open(path, "rb") as f:
                _TARBALL["data"] = f.read()
    return _TARBALL["data"]


def _network_info(count=1):
    vifs = []
    for i in range(count):
        subnet = network_model.Subnet(
            cidr="10.249.0.0/24",
            dns=[network_model.IP("10.249.0.253")],
            gateway=network_model.IP("10.249.0.254"),
            ips=[network_model.IP(f"10.249.0.{10 + i}")], routes=None,
            dhcp_server="10.249.0.252")
        network = network_model.Network(
            id="4587c867-a2e6-4356-8c5b-bc077dcb8620", bridge=BRIDGE,
            label=None, subnets=[subnet], injected=False)
        vif_id = f"51a9642b-1414-4bd6-9a92-1320ddc55a{63 + i:02d}"
        vifs.append(network_model.VIF(
            id=vif_id, address=f"de:ad:be:ef:ca:{0xfe - i:02x}",
            network=network, type=network_model.VIF_TYPE_BRIDGE,
            devname=("tap" + vif_id)[:14]))
    return network_model.NetworkInfo(vifs)


def _memory_limit(pid):
    """The memory limit of ``pid``'s cgroup, v1 or v2, in bytes."""
    with open(f"/proc/{pid}/cgroup") as f:
        lines = [line.strip().split(":", 2) for line in f]
    for _, controllers, path in lines:
        if "memory" in controllers.split(","):
            with open(f"/sys/fs/cgroup/memory{path}/"
                      "memory.limit_in_bytes") as f:
                return int(f.read())
    path = next(p for _, c, p in lines if c == "")
    with open(f"/sys/fs/cgroup{path}/memory.max") as f:
        return int(f.read())


class _Missing(logging.Handler):
    """Collects the methods Nova's tests say the driver lacks."""

    def __init__(self):
        super().__init__()
        self.methods = []

    def emit(self, record):
        args = record.args if isinstance(record.args, dict) else {}
        if "does not implement" in str(record.msg) and "method" in args:
            self.methods.append(args["method"])


class PyctConformance(test_virt_drivers._VirtDriverTestCase,
                     test.TestCase):
    """Nova's driver tests, strict, against pyct's adapter."""

    def setUp(self):
        self.driver_module = "nova.virt.pyct.PyctDriver"
        self.state = tempfile.mkdtemp(prefix="pyct-nova-conf-")
        self.addCleanup(shutil.rmtree, self.state, True)
        pyct_conf.register_opts(CONF)
        # a cgroup parent of this run's own: another checkout's run at the
        # same time must neither count nor release this run's guests
        self.flags(state_path=self.state, preallocate_images="none",
                   cgroup_parent=f"pyct-nova-conformance-{os.getpid()}",
                   group="pyct")
        self.flags(my_ip="127.0.0.1")
        self.stub_out("nova.tests.unit.utils.get_test_network_info",
                      _network_info)
        # Nova's unit tests forbid reading /sys (they fake the host);
        # here the point is the real kernel's cgroups
        unpoison = mock.patch.object(nova_fixtures.SysFsPoisonFixture,
                                     "setUp", fixtures.Fixture.setUp)
        unpoison.start()
        self.addCleanup(unpoison.stop)
        self.missing = _Missing()
        logging.getLogger(test_virt_drivers.__name__).addHandler(
            self.missing)
        super().setUp()
        image = self.image_service.images[IMAGE_ID]
        image.update(disk_format="raw", container_format="bare")
        self.image_service._imagedata[IMAGE_ID] = _tarball()
        self.connection.init_host("myhostname")
        self.addCleanup(self._clean_host)

    def _clean_host(self):
        logging.getLogger(test_virt_drivers.__name__).removeHandler(
            self.missing)
        for uuid in self.connection.list_instance_uuids():
            instance = test_utils.get_test_instance(obj=True)
            instance.uuid = uuid
            self.connection.destroy(self.ctxt, instance, _network_info(2))
        self.connection.plugger.unplug(BRIDGE)
        held = self.connection.pyct.release_host([])
        self.assertTrue(held.empty(), held)

    def tearDown(self):
        missing = sorted(set(self.missing.methods))
        path = os.environ.get("PYCT_CONFORMANCE_RESULTS")
        if path:
            with open(path, "a") as f:
                f.write(json.dumps({"test": self._testMethodName,
                                    "missing": missing}) + "\n")
        strict = sorted(set(missing) & DECLARED)
        super().tearDown()
        self.assertEqual([], strict, "declared but NotImplementedError")


    def test_unrescue_rescued_instance(self):
        nova_test = test_virt_drivers._VirtDriverTestCase \
            .test_unrescue_rescued_instance
        body = inspect.unwrap(nova_test)  # (self, mock_unlink)
        test_virt_drivers.catch_notimplementederror(body)(self, None)


class PyctRefusals(PyctConformance):
    """Bad input through Nova fails the spawn with Nova's exception that
    says why, and leaves nothing on the host. (Run with the name filter
    ``PyctRefusals.test_refuses``: the inherited tests run above.)"""

    def _spawn(self, network_info=None, block_device_info=None):
        instance = test_utils.get_test_instance(obj=True)
        image_meta = test_utils.get_test_image_object(None, instance)
        self.connection.spawn(self.ctxt, instance, image_meta, [], "", {},
                              network_info=network_info,
                              block_device_info=block_device_info)
        return instance

    def _assert_nothing_left(self):
        self.assertEqual([], self.connection.list_instance_uuids())
        self.assertEqual({}, self.connection.id_ranges._table())
        self.assertIsNone(self.connection.plugger.host.link_index(
            "tap51a9642b-14"))

    def test_refuses_qcow2_and_iso(self):
        for fmt in ("qcow2", "iso"):
            self.image_service.images[IMAGE_ID].update(disk_format=fmt)
            err = self.assertRaises(exception.ImageUnacceptable,
                                    self._spawn)
            self.assertIn(f"disk_format {fmt}", err.format_message())
            self._assert_nothing_left()

    def test_refuses_ovs_vif(self):
        info = _network_info()
        info[0]["type"] = network_model.VIF_TYPE_OVS
        err = self.assertRaises(exception.InvalidInput, self._spawn, info)
        self.assertIn("VIF type ovs", err.format_message())
        self._assert_nothing_left()

    def test_refuses_invalid_quota_spec(self):
        def flavor(context=None, options=None):
            values = dict(name="bad", flavorid="bad", memory_mb=64,
                          vcpus=1, root_gb=1, ephemeral_gb=0, swap=0,
                          extra_specs={"quota:cpu_shares": "lots"})
            return orig(context, values)
        orig = test_utils.get_test_flavor
        self.stub_out("nova.tests.unit.utils.get_test_flavor", flavor)
        err = self.assertRaises(exception.InvalidInput, self._spawn,
                                _network_info())
        self.assertIn("quota:cpu_shares", err.format_message())
        self._assert_nothing_left()

    def test_refuses_volumes(self):
        bdi = {"block_device_mapping": [{"mount_device": "/dev/vdb"}]}
        err = self.assertRaises(exception.InvalidInput, self._spawn,
                                _network_info(), bdi)
        self.assertIn("volumes are not supported", err.format_message())
        self._assert_nothing_left()

    def test_refuses_move_elsewhere_and_disk_down(self):
        """Nova's own test moves to 'dest_host': pyct moves a guest only
        within its host. A smaller root disk is refused on this host too.
        Either way the guest is left running, untouched, and Nova rolls
        the server back (InstanceFaultRollback)."""
        instance = self._spawn(_network_info())
        pid = self.connection._pid(instance.uuid)
        smaller = test_utils.get_test_flavor(options={
            "flavorid": "smaller", "name": "smaller", "root_gb": 20,
            "extra_specs": {}})
        for dest, flavor, inner, why in (
                ("dest_host", test_utils.get_test_flavor(),
                 exception.MigrationPreCheckError, "only within its host"),
                (CONF.my_ip, smaller, exception.ResizeError,
                 "Unable to resize disk down")):
            err = self.assertRaises(
                exception.InstanceFaultRollback,
                self.connection.migrate_disk_and_power_off, self.ctxt,
                instance, dest, flavor, _network_info())
            self.assertIsInstance(err.inner_exception, inner)
            self.assertIn(why, str(err.inner_exception))
            self.assertEqual(pid, self.connection._pid(instance.uuid))
        self.connection.destroy(self.ctxt, instance, _network_info())
        self._assert_nothing_left()

    def test_boots_real_guest_with_flavor_limits_and_port(self):
        instance = self._spawn(_network_info())
        info = self.connection.get_info(instance)
        self.assertEqual(power_state.RUNNING, info.state)
        pid = self.connection._pid(instance.uuid)
        self.assertEqual(2048 << 20, _memory_limit(pid))  # the flavor's
        self.assertIsNotNone(self.connection.plugger.host.link_index(
            "tap51a9642b-14"))
        self.connection.destroy(self.ctxt, instance, _network_info())
        self._assert_nothing_left()

    def test_restarted_compute_readopts_guest(self):
        instance = self._spawn(_network_info())
        pid = self.connection._pid(instance.uuid)
        # a new driver object is what a restarted nova-compute builds
        restarted = type(self.connection)(fake.FakeVirtAPI())
        restarted.init_host("myhostname")
        self.assertEqual([instance.uuid], restarted.list_instance_uuids())
        self.assertEqual(power_state.RUNNING,
                         restarted.get_info(instance).state)
        restarted.plug_vifs(instance, _network_info())
        self.assertEqual(pid, restarted._pid(instance.uuid))
        restarted.reboot(self.ctxt, instance, _network_info(), "HARD")
        self.assertNotEqual(pid, restarted._pid(instance.uuid))
        self.assertIsNotNone(restarted.plugger.host.link_index(
            "tap51a9642b-14"))
        restarted.destroy(self.ctxt, instance, _network_info())
        self._assert_nothing_left()

    def test_attach_and_detach_interface_on_running_guest(self):
        instance = self._spawn(_network_info())
        second = _network_info(2)[1]
        second["type"] = network_model.VIF_TYPE_TAP
        image_meta = test_utils.get_test_image_object(None, instance)
        self.connection.attach_interface(self.ctxt, instance, image_meta,
                                         second)
        tap = second["devname"]
        self.assertIsNotNone(self.connection.plugger.host.link_index(tap))
        self.connection.detach_interface(self.ctxt, instance, second)
        self.assertIsNone(self.connection.plugger.host.link_index(tap))
        self.connection.destroy(self.ctxt, instance, _network_info())
        self._assert_nothing_left()
