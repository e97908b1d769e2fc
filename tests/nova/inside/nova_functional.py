"""A server booted through Nova's API lands as a real pyct guest.

Runs INSIDE the Nova venv, as root: Nova's in-process functional harness
(``_IntegratedTestBase``: the real nova-api WSGI app, conductor,
scheduler and placement from ``openstack-placement``, Nova's Glance and
Neutron fixtures) with ``compute_driver = pyct.PyctDriver``. The Glance
fixture's image holds a busybox root file system (raw/bare) and the
Neutron fixture's port is a ``tap`` port (Nova 34 itself refuses Linux
bridge ports, and pyct does not plug OVS yet) on 10.249.1.0/24, this
suite's test range, whose addresses exist only in the guest.
"""

# Nova's functional package picks eventlet or native threads first
import nova.tests.functional  # noqa: F401,I100

import os
import shutil
import sys
import tempfile
from unittest import mock

import fixtures
from nova import conf as nova_conf
from nova.tests import fixtures as nova_fixtures
from nova.tests.functional import integrated_helpers

from nova_conformance import _memory_limit, _tarball
from pyct_driver.nova import conf as pyct_conf

IMAGE_ID = "155d900f-4e14-4e4c-a73d-069cbf4541e6"


class PyctThroughNovaAPI(integrated_helpers._IntegratedTestBase):
    """Boot, operate and delete a server with Nova's API."""

    ADMIN_API = True
    microversion = "latest"

    def setUp(self):
        self.state = tempfile.mkdtemp(prefix="pyct-nova-func-")
        self.addCleanup(shutil.rmtree, self.state, True)
        unpoison = mock.patch.object(nova_fixtures.SysFsPoisonFixture,
                                     "setUp", fixtures.Fixture.setUp)
        unpoison.start()
        self.addCleanup(unpoison.stop)
        # the wheel installs Nova's paste pipeline under the venv's prefix
        self.flags(api_paste_config=os.path.join(
            sys.prefix, "etc", "nova", "api-paste.ini"), group="wsgi")
        super().setUp()

    def _setup_compute_service(self):
        pyct_conf.register_opts(nova_conf.CONF)
        self.flags(compute_driver="pyct.PyctDriver")
        self.flags(state_path=self.state, preallocate_images="none",
                   cgroup_parent="pyct-nova-functional", group="pyct")
        image = self.glance.images[IMAGE_ID]
        image.update(disk_format="raw", container_format="bare")
        self.glance._imagedata[IMAGE_ID] = _tarball()
        port = self.neutron._ports[self.neutron.port_1["id"]]
        port["binding:vif_type"] = "tap"
        port["fixed_ips"][0]["ip_address"] = "10.249.1.3"
        subnet = self.neutron._subnets[self.neutron.subnet_1["id"]]
        subnet.update(cidr="10.249.1.0/24", gateway_ip="10.249.1.1",
                      allocation_pools=[{"start": "10.249.1.2",
                                         "end": "10.249.1.254"}])
        compute = super()._setup_compute_service()
        self.driver = compute.manager.driver
        self.addCleanup(self._clean_host)
        return compute

    def _clean_host(self):
        for uuid in self.driver.list_instance_uuids():
            self.driver.pyct.destroy(
                self.driver._bare(type("I", (), {"uuid": uuid})()))
        self.driver.plugger.unplug(self.devname)
        held = self.driver.pyct.release_host([])
        self.assertTrue(held.empty(), held)

    @property
    def devname(self):
        return ("tap" + self.neutron.port_1["id"])[:14]

    def _guest_pid(self, server):
        return self.driver._pid(server["id"])

    def test_server_lifecycle_through_nova_api(self):
        server = self._create_server(
            image_uuid=IMAGE_ID, flavor_id="1",
            networks=[{"port": self.neutron.port_1["id"]}])
        self.assertEqual("ACTIVE", server["status"])
        pid = self._guest_pid(server)
        self.assertIsNotNone(pid)
        flavor = self.api.get_flavor("1")
        self.assertEqual(flavor["ram"] << 20, _memory_limit(pid))
        self.assertIsNotNone(self.driver.plugger.host.link_index(
            self.devname))

        server = self._reboot_server(server, hard=True)
        self.assertNotEqual(pid, self._guest_pid(server))
        self.assertIsNotNone(self.driver.plugger.host.link_index(
            self.devname))

        server = self._stop_server(server)
        self.assertIsNone(self._guest_pid(server))
        server = self._start_server(server)
        self.assertIsNotNone(self._guest_pid(server))

        self.api.post_server_action(server["id"], {"pause": None})
        server = self._wait_for_state_change(server, "PAUSED")
        self.api.post_server_action(server["id"], {"unpause": None})
        server = self._wait_for_state_change(server, "ACTIVE")

        log = self.api.post_server_action(
            server["id"], {"os-getConsoleOutput": {}})
        self.assertIn("output", log)

        self._delete_server(server)
        self.assertEqual([], self.driver.list_instance_uuids())
        self.assertFalse(os.path.exists(
            self.driver.pyct.records.dir(server["id"])))
