"""A server booted through Nova's API lands as a real pyct guest.

Runs INSIDE the Nova venv, as root: Nova's in-process functional harness
(``_IntegratedTestBase``: the real nova-api WSGI app, conductor,
scheduler and placement from ``openstack-placement``, Nova's Glance and
Neutron fixtures) with ``compute_driver = pyct.PyctDriver``. The Glance
fixture's image holds a busybox root file system (raw/bare) and the
Neutron fixture's two ports are ``tap`` ports (Nova 34 itself refuses
Linux bridge ports, and pyct does not plug OVS) on 10.249.1.0/24, this
suite's test range, whose addresses exist only in the guest.

What a guest sees is read inside it, through pyct's confined exec
(``ContainerDriver.exec_in_guest``: guest root, the guest's namespaces);
its links through a netlink socket in its network namespace.
"""

# Nova's functional package picks eventlet or native threads first
import nova.tests.functional  # noqa: F401,I100

import base64
import copy
import io
import json
import os
import shutil
import sys
import tarfile
import tempfile
import uuid
from unittest import mock

import fixtures
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from nova import conf as nova_conf
from nova.tests import fixtures as nova_fixtures
from nova.tests.functional.api import client
from nova.tests.functional import integrated_helpers

from nova_conformance import _memory_limit, _tarball
from pyct_driver.nova import conf as pyct_conf
from pyct_driver.virt.network import netlink

IMAGE_ID = "155d900f-4e14-4e4c-a73d-069cbf4541e6"
USER_DATA = b"#!/bin/sh\necho pyct-nova-user-data\n"


class NovaWithPyct(integrated_helpers._IntegratedTestBase):
    """Nova's in-process services with pyct's driver, and the views of a
    guest the tests read (no tests of its own: other modules import it)."""

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
                   cgroup_parent=f"pyct-nova-functional-{os.getpid()}",
                   group="pyct")
        image = self.glance.images[IMAGE_ID]
        image.update(disk_format="raw", container_format="bare")
        self.glance._imagedata[IMAGE_ID] = _tarball()
        self.neutron.create_port()  # port_2, which the fixture makes on ask
        for which, address in (("port_1", "10.249.1.3"),
                               ("port_2", "10.249.1.4")):
            port = self.neutron._ports[getattr(self.neutron, which)["id"]]
            port["binding:vif_type"] = "tap"
            port["fixed_ips"][0]["ip_address"] = address
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
        self.driver.plugger.unplug(self.devname2)
        held = self.driver.pyct.release_host([])
        self.assertTrue(held.empty(), held)

    @property
    def devname(self):
        return ("tap" + self.neutron.port_1["id"])[:14]

    @property
    def devname2(self):
        return ("tap" + self.neutron.port_2["id"])[:14]

    def _guest_pid(self, server):
        return self.driver._pid(server["id"])

    def _in_guest(self, server, *argv):
        """``argv`` run inside the guest: (exit code, stdout bytes)."""
        session = self.driver.pyct.exec_in_guest(server["id"], list(argv))
        with session:
            code, out, err = session.communicate(b"", 30)
        return code, out

    def _guest_file(self, server, path):
        code, out = self._in_guest(server, "cat", path)
        self.assertEqual(0, code, f"cat {path} in the guest")
        return out

    def _guest_links(self, server):
        """{name: MAC} of the links in the guest's network namespace."""
        with netlink.guest_netlink(self._guest_pid(server)) as ipr:
            return {link.get_attr("IFLA_IFNAME"):
                    link.get_attr("IFLA_ADDRESS") for link in ipr.get_links()}

    def _host_link(self, name):
        return self.driver.plugger.host.link_index(name)


class PyctThroughNovaAPI(NovaWithPyct):
    """Boot, operate and delete a server with Nova's API."""

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

    def _assert_drive(self, server, public):
        drive = "/mnt/config/openstack/latest/"
        self.assertEqual(USER_DATA,
                         self._guest_file(server, drive + "user_data"))
        meta = json.loads(self._guest_file(server, drive + "meta_data.json"))
        self.assertEqual(server["id"], meta["uuid"])
        self.assertEqual({"pyct-key": public}, meta["public_keys"])
        self.assertEqual("pyct-cd", meta["hostname"].split(".")[0])
        net = json.loads(self._guest_file(server,
                                          drive + "network_data.json"))
        self.assertEqual([self.neutron.port_1["mac_address"]],
                         [link["ethernet_mac_address"]
                          for link in net["links"]])
        seed = "/var/lib/cloud/seed/nocloud-net/"
        self.assertEqual(USER_DATA,
                         self._guest_file(server, seed + "user-data"))
        self.assertIn(public, json.loads(self._guest_file(
            server, seed + "meta-data"))["public-keys"])
        # pyct's first-boot injection puts the key in place as well
        self.assertIn(public.encode(), self._guest_file(
            server, "/root/.ssh/authorized_keys"))
        # guest root cannot change what the cloud told it
        code, out = self._in_guest(
            server, "sh", "-c",
            f"echo x >> {drive}user_data && echo wrote || echo refused")
        self.assertEqual((0, b"refused\n"), (code, out))

    def test_config_drive_gives_the_guest_its_user_data_and_key(self):
        """config_drive=True through Nova's API: Nova's metadata, built
        by Nova's InstanceMetadata, is read-only in the running guest at
        /mnt/config and as a NoCloud seed, and survives a hard reboot."""
        public = ed25519.Ed25519PrivateKey.generate().public_key() \
            .public_bytes(serialization.Encoding.OpenSSH,
                          serialization.PublicFormat.OpenSSH).decode()
        self.api.post_keypair({"keypair": {"name": "pyct-key",
                                           "public_key": public}})
        body = self._build_server(
            name="pyct-cd", image_uuid=IMAGE_ID, flavor_id="1",
            networks=[{"port": self.neutron.port_1["id"]}])
        body.update(user_data=base64.b64encode(USER_DATA).decode(),
                    key_name="pyct-key", config_drive=True)
        server = self._wait_for_state_change(
            self.api.post_server({"server": body}), "ACTIVE")
        self.assertEqual("True", str(server["config_drive"]))

        self._assert_drive(server, public)
        pid = self._guest_pid(server)
        server = self._reboot_server(server, hard=True)
        self.assertNotEqual(pid, self._guest_pid(server))
        self._assert_drive(server, public)  # the spawn's drive again
        self._delete_server(server)
        self.assertEqual([], self.driver.list_instance_uuids())

    def test_interface_hotplug_and_restarted_compute_readopts_guest(self):
        """A second Neutron port attached and detached through Nova's
        API; then nova-compute restarts (a new driver object, its
        init_host) and finds the same guest running, its port untouched,
        and can still reboot it."""
        server = self._create_server(
            image_uuid=IMAGE_ID, flavor_id="1",
            networks=[{"port": self.neutron.port_1["id"]}])
        mac2 = self.neutron.port_2["mac_address"]
        self.assertIsNone(self._host_link(self.devname2))
        self._attach_interface(server, self.neutron.port_2["id"])
        self.assertIsNotNone(self._host_link(self.devname2))
        self.assertEqual(mac2, self._guest_links(server).get("eth1"))
        self._detach_interface(server, self.neutron.port_2["id"])
        self.assertIsNone(self._host_link(self.devname2))
        self.assertNotIn("eth1", self._guest_links(server))

        pid = self._guest_pid(server)
        tap = self._host_link(self.devname)
        old = self.driver
        self.compute = self.restart_compute_service(
            self.compute, keep_hypervisor_state=False)
        self.driver = self.compute.manager.driver
        self.assertIsNot(old, self.driver)
        self.assertEqual(pid, self._guest_pid(server))
        self.assertEqual(tap, self._host_link(self.devname))
        self.assertEqual("ACTIVE", self.api.get_server(server["id"])[
            "status"])
        server = self._reboot_server(server, hard=True)
        self.assertNotIn(self._guest_pid(server), (None, pid))
        self.assertIsNotNone(self._host_link(self.devname))
        self._delete_server(server)
        self.assertEqual([], self.driver.list_instance_uuids())

    def _image(self, disk_format):
        image = copy.deepcopy(self.glance.images[IMAGE_ID])
        image.update(id=str(uuid.uuid4()), disk_format=disk_format,
                     name=f"pyct-{disk_format}")
        self.glance.images[image["id"]] = image
        self.glance._imagedata[image["id"]] = b"QFI\xfb not a root"
        return image["id"]

    def _bad_flavor(self, cpu_shares):
        flavor = self.api.post_flavor({"flavor": {
            "name": f"pyct-shares-{cpu_shares}", "ram": 64, "vcpus": 1,
            "disk": 1}})
        self.api.post_extra_spec(flavor["id"], {
            "extra_specs": {"quota:cpu_shares": cpu_shares}})
        return flavor["id"]

    def _assert_build_fails(self, why, image=IMAGE_ID, flavor="1",
                            port="port_1"):
        server = self._create_server(
            image_uuid=image, flavor_id=flavor, expected_state="ERROR",
            networks=[{"port": getattr(self.neutron, port)["id"]}])
        self.assertIn(why, server["fault"]["message"])
        self.assertEqual([], self.driver.list_instance_uuids())
        self.assertEqual({}, self.driver.id_ranges._table())
        self.assertFalse(self.driver.pyct.cgroups.exists(server["id"]))
        self.assertFalse(os.path.exists(
            self.driver.pyct.records.dir(server["id"])))
        for devname in (self.devname, self.devname2):
            self.assertIsNone(self._host_link(devname))
        fetch = os.path.join(self.state, "fetch")
        self.assertEqual([], os.listdir(fetch) if os.path.isdir(fetch)
                         else [])
        self._delete_server(server)

    def test_bad_input_fails_the_build_with_a_fault_leaving_nothing(self):
        """Images that hold a disk, a VIF type pyct cannot plug and a
        quota: spec pyct refuses: each build ends in ERROR with a fault
        saying why, and nothing of it stays on the host."""
        for fmt in ("qcow2", "iso"):
            self._assert_build_fails(f"disk_format {fmt}",
                                     image=self._image(fmt))
        port = self.neutron._ports[self.neutron.port_2["id"]]
        port["binding:vif_type"] = "ovs"
        self._assert_build_fails("VIF type ovs", port="port_2")
        # Nova's own API refuses what is no integer; what it takes but
        # no cgroup can honour (shares of 0) fails the build in pyct
        err = self.assertRaises(client.OpenStackApiException,
                                self._bad_flavor, "lots")
        self.assertEqual(400, err.response.status_code)
        self._assert_build_fails("quota:cpu_shares",
                                 flavor=self._bad_flavor("0"))

    def test_snapshot_goes_to_glance_and_boots_elsewhere(self):
        """createImage through Nova's API: the guest's change (a file
        written inside it) goes to Glance as an OCI archive; a server
        booted from that archive alone (pyct's local copy dropped, so
        the image is fetched through Nova's image API) has the file."""
        uploaded = {}
        update = self.glance.update

        def keep_data(context, image_id, metadata, data=None,
                      purge_props=False):
            if data is not None:  # what Glance stores (the fixture not)
                uploaded[image_id] = data.read()
            return update(context, image_id, metadata, None, purge_props)

        self.useFixture(fixtures.MonkeyPatch(
            "nova.tests.fixtures.glance.GlanceFixture.update",
            lambda _self, *a, **kw: keep_data(*a, **kw)))
        server = self._create_server(
            image_uuid=IMAGE_ID, flavor_id="1",
            networks=[{"port": self.neutron.port_1["id"]}])
        self.assertEqual((0, b""), self._in_guest(
            server, "sh", "-c", "echo pyct-snap > /root/marker"))
        image_id = self.api.post_server_action(
            server["id"], {"createImage": {"name": "pyct-snap"}})[
            "image_id"]
        self.notifier.wait_for_versioned_notifications(
            "instance.snapshot.end")
        server = self._wait_for_state_change(server, "ACTIVE")
        image = self.glance.images[image_id]
        self.assertEqual(("raw", "docker"), (image["disk_format"],
                                             image["container_format"]))
        with tarfile.open(fileobj=io.BytesIO(uploaded[image_id])) as tar:
            self.assertIn("index.json", tar.getnames())
        self._delete_server(server)

        self.driver.pyct.delete_image(image_id)
        self.glance._imagedata[image_id] = uploaded[image_id]
        # the fetch and import of the archive take longer than the
        # harness's default 5 s wait on a loaded machine
        second = self._wait_for_state_change(self.api.post_server(
            {"server": self._build_server(
                image_uuid=image_id, flavor_id="1",
                networks=[{"port": self.neutron.port_1["id"]}])}),
            "ACTIVE", max_retries=120)
        self.assertEqual(b"pyct-snap\n",
                         self._guest_file(second, "/root/marker"))
        self._delete_server(second)
        self.assertEqual([], os.listdir(os.path.join(self.state, "fetch")))
