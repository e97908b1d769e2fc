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
  fixture that forbids reading /sys is off (pyct reads its cgroups).

Strict: Nova's tests swallow ``NotImplementedError`` (and log it); this
module records each such method and fails the test when the adapter
declares it supported (``DECLARED``). The methods each test found missing
are appended to the JSON-lines file named by ``PYCT_CONFORMANCE_RESULTS``.
"""

# Nova's test package picks eventlet or native threads
# (OS_NOVA_DISABLE_EVENTLET_PATCHING) before anything imports eventlet
import nova.tests.unit  # noqa: F401,I100

import json
import logging
import os
import shutil
import tempfile
from unittest import mock

import fixtures

from nova import test
from nova.network import model as network_model
from nova.tests import fixtures as nova_fixtures
from nova.tests.unit import utils as test_utils
from nova.tests.unit.virt import test_virt_drivers

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
    "instance_exists", "get_num_instances",
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
        pyct_conf.register_opts(CONF)
        self.flags(state_path=self.state, preallocate_images="none",
                   cgroup_parent="pyct-nova-conformance", group="pyct")
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
        self.connection.pyct.release_host([])
        shutil.rmtree(self.state, ignore_errors=True)
        self.connection.plugger.unplug(BRIDGE)

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
