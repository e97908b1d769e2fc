"""Unit tests of the adapter's object mapping, run inside the Nova venv.

Nova's real objects (``Flavor``, ``Instance``, ``ImageMeta``, the
``network_info`` model) go through ``pyct_driver.nova.mapping``; no host
changes, no root needed.
"""

# Nova's test package registers its objects and picks threads first
import nova.tests.unit  # noqa: F401,I100

import base64
import json
import os
import tempfile
import unittest

from nova import exception
from nova import objects
from nova.network import model as network_model

from pyct_driver.nova import configdrive
from pyct_driver.nova import mapping


def _flavor(**extra_specs):
    return objects.Flavor(vcpus=3, memory_mb=768, root_gb=5, swap=256,
                          ephemeral_gb=2, extra_specs=extra_specs)


def _vif(vif_type="bridge", cidr="10.249.1.0/24", ip="10.249.1.5",
         devname="tapabc", mtu=1450):
    subnet = network_model.Subnet(
        cidr=cidr, dns=[network_model.IP("10.249.1.53")],
        gateway=network_model.IP("10.249.1.1"),
        ips=[network_model.FixedIP(address=ip)])
    network = network_model.Network(id="net-1", bridge="brq-net1",
                                    subnets=[subnet], mtu=mtu)
    return network_model.VIF(
        id="port-1234567890abcdef", address="fa:16:3e:00:00:01",
        network=network, type=vif_type, devname=devname)


class FlavorMapping(unittest.TestCase):

    def test_every_flavor_field(self):
        spec = mapping.flavor_spec(_flavor(**{"quota:cpu_shares": "2048",
                                              "hw:cpu_policy": "shared"}))
        self.assertEqual((3, 768, 5, 256, 2),
                         (spec.vcpus, spec.memory_mb, spec.root_gb,
                          spec.swap_mb, spec.ephemeral_gb))
        self.assertEqual({"quota:cpu_shares": "2048",
                          "hw:cpu_policy": "shared"}, spec.extra_specs)

    def test_invalid_quota_and_pyct_specs_are_refused(self):
        for key, value in (("quota:cpu_shares", "lots"),
                           ("quota:cpu_period", "1"),
                           ("pyct:pids_max", "3"),
                           ("pyct:privileged", "maybe"),
                           ("pyct:no_such_spec", "1")):
            with self.subTest(key=key):
                with self.assertRaises(exception.InvalidInput) as caught:
                    mapping.flavor_spec(_flavor(**{key: value}))
                self.assertIn(key, caught.exception.format_message())

    def test_host_root_only_when_the_operator_allows(self):
        flavor = _flavor(**{"pyct:host_root": "true"})
        self.assertRaises(exception.InvalidInput, mapping.flavor_spec,
                          flavor)
        self.assertTrue(mapping.flavor_spec(flavor, allow_host_root=True))

    def test_instance_spec(self):
        instance = objects.Instance(
            uuid="6b6b0e4e-1b8c-4a0e-9d4d-3f7f4b2b9d11", id=7,
            hostname="web", flavor=_flavor(), image_ref="img-1",
            user_data=base64.b64encode(b"#!/bin/sh\necho hi\n").decode(),
            metadata={"k": "v"}, key_data="ssh-ed25519 AAAA",
            project_id="proj")
        spec = mapping.instance_spec(instance, None, id_range=(1 << 30,
                                                               65536))
        self.assertEqual("instance-00000007", spec.name)
        self.assertEqual("#!/bin/sh\necho hi\n", spec.user_data)
        self.assertEqual(("web", "img-1", {"k": "v"}, "proj"),
                         (spec.hostname, spec.image_id, spec.metadata,
                          spec.project_id))
        self.assertEqual((1 << 30, 65536), spec.id_range)
        self.assertFalse(spec.privileged)
        instance.flavor = _flavor(**{"pyct:privileged": "true"})
        spec = mapping.instance_spec(instance, None, id_range=(1, 2))
        self.assertTrue(spec.privileged)
        self.assertIsNone(spec.id_range)


class ImageMapping(unittest.TestCase):

    def _meta(self, disk, container, **props):
        return objects.ImageMeta.from_dict(
            {"id": "img", "disk_format": disk, "container_format": container,
             "properties": props})

    def test_root_file_systems_are_accepted(self):
        for disk, container in (("raw", "bare"), ("raw", "docker"),
                                ("raw", "oci")):
            mapping.check_image(self._meta(disk, container))

    def test_disk_images_are_refused(self):
        for disk, container in (("qcow2", "bare"), ("iso", "bare"),
                                ("vmdk", "bare"), ("raw", "ami")):
            with self.subTest(disk=disk, container=container):
                self.assertRaises(exception.ImageUnacceptable,
                                  mapping.check_image,
                                  self._meta(disk, container))

    def test_os_command_line_is_the_guest_init(self):
        meta = self._meta("raw", "bare", os_command_line="/sbin/init -v")
        self.assertEqual({"os_command_line": "/sbin/init -v"},
                         mapping.image_properties(meta))


class NetworkInfoMapping(unittest.TestCase):

    def test_bridge_vif(self):
        vif = mapping.nova_vif(_vif(), 0)
        self.assertEqual(("bridge", "tapabc", "brq-net1"),
                         (vif.vif_type, vif.devname, vif.bridge))
        spec = vif.spec
        self.assertEqual(("port-1234567890abcdef", "net-1",
                          "fa:16:3e:00:00:01", "10.249.1.5", 24,
                          "10.249.1.1", 1450, 0, ("10.249.1.53",)),
                         (spec.port_id, spec.network_id, spec.mac, spec.ip,
                          spec.prefixlen, spec.gateway, spec.mtu,
                          spec.device_index, spec.dns_nameservers))

    def test_tap_and_ethernet_have_no_bridge_and_a_default_devname(self):
        for vif_type in ("tap", "ethernet"):
            vif = mapping.nova_vif(_vif(vif_type, devname=None), 1)
            self.assertIsNone(vif.bridge)
            self.assertEqual("tapport-123456", vif.devname)
            self.assertEqual(1, vif.spec.device_index)

    def test_other_vif_types_are_refused(self):
        for vif_type in ("ovs", "vhostuser", "hw_veb", "macvtap"):
            with self.subTest(vif_type=vif_type):
                with self.assertRaises(exception.InvalidInput) as caught:
                    mapping.nova_vif(_vif(vif_type), 0)
                self.assertIn(f"VIF type {vif_type}",
                              caught.exception.format_message())

    def test_ipv6_only_port_is_refused(self):
        self.assertRaises(exception.InvalidInput, mapping.nova_vif,
                          _vif(cidr="2001:db8::/64", ip="2001:db8::5"), 0)

    def test_ports_in_order(self):
        info = network_model.NetworkInfo([_vif(), _vif("tap")])
        self.assertEqual([0, 1], [v.spec.device_index
                                  for v in mapping.nova_vifs(info)])
        self.assertEqual((), mapping.nova_vifs(None))


class BlockDevices(unittest.TestCase):

    def test_no_block_devices_is_fine(self):
        mapping.refuse_volumes(None)
        mapping.refuse_volumes({"block_device_mapping": [], "ephemerals": [],
                                "swap": None, "root_device_name": "/dev/vda"})

    def test_volumes_ephemerals_and_swap_are_refused(self):
        for info in ({"block_device_mapping": [{"mount_device": "/dev/vdb"}]},
                     {"ephemerals": [{"size": 1}]},
                     {"swap": {"swap_size": 512}}):
            with self.subTest(info=info):
                self.assertRaises(exception.InvalidInput,
                                  mapping.refuse_volumes, info)


class ConfigDriveMapping(unittest.TestCase):
    """What ``configdrive`` decides and adds without Nova's database (the
    drive's OpenStack tree, from Nova's InstanceMetadata, is read inside
    a guest by the functional test)."""

    def _instance(self, config_drive, **props):
        return objects.Instance(
            uuid="6b6b0e4e-1b8c-4a0e-9d4d-3f7f4b2b9d11", hostname="web",
            config_drive=config_drive, launched_at=None, key_name="k",
            image_ref="img-1",
            key_data="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG5v pyct",
            user_data=base64.b64encode(b"#cloud-config\n").decode(),
            system_metadata={f"image_{k}": v for k, v in props.items()})

    def test_no_drive_unless_nova_requires_one(self):
        self.assertEqual((), configdrive.build(self._instance(""), None))

    def test_nocloud_seed_from_the_instance_and_its_ports(self):
        files = configdrive._nocloud(self._instance("True"),
                                     network_model.NetworkInfo([_vif()]))
        meta = json.loads(files["nocloud/meta-data"])
        self.assertEqual(("6b6b0e4e-1b8c-4a0e-9d4d-3f7f4b2b9d11", "web"),
                         (meta["instance-id"], meta["local-hostname"]))
        self.assertEqual(["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG5v pyct"],
                         meta["public-keys"])
        self.assertEqual(b"#cloud-config\n", files["nocloud/user-data"])
        eth0 = json.loads(files["nocloud/network-config"])["ethernets"][
            "eth0"]
        self.assertEqual(({"macaddress": "fa:16:3e:00:00:01"},
                          ["10.249.1.5/24"], 1450),
                         (eth0["match"], eth0["addresses"], eth0["mtu"]))

    def test_the_spawns_files_are_kept_for_later_starts(self):
        files = (("nocloud/user-data", b"\x00\xff"),
                 ("openstack/latest/meta_data.json", b"{}"))
        with tempfile.TemporaryDirectory() as tmp:
            self.assertEqual((), configdrive.load(tmp))
            configdrive.save(tmp, files)
            self.assertEqual(files, configdrive.load(tmp))
            mode = os.stat(os.path.join(tmp, configdrive.RECORD)).st_mode
            self.assertEqual(0o600, mode & 0o777)
