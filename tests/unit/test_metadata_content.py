"""The metadata documents: shapes cloud-init reads, from real DB rows."""

from __future__ import annotations

import json

import pytest

from pyct_driver.metadata import content, lookup
from tests.fixtures import metadata_rows

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBbB test@host"


@pytest.fixture
def db():
    db = metadata_rows.make_db()
    yield db
    db.dispose()


@pytest.fixture
def src(db):
    metadata_rows.add_instance(db, "10.241.250.7", name="web", key=KEY,
                               user_data=b"#cloud-config\n\x00\xffraw",
                               dns=["10.241.250.1"])
    found = lookup.source_for_address(db, "10.241.250.7")
    assert found is not None
    return found


def get(src, path):
    status, body, ctype = content.respond(src, path)
    return status, body, ctype


def test_lookup_by_address_only_finds_the_port_owner(db):
    a = metadata_rows.add_instance(db, "10.241.250.7", name="a")
    b = metadata_rows.add_instance(db, "10.241.250.8", name="b")
    assert lookup.source_for_address(db, "10.241.250.7").instance["uuid"] == a
    assert lookup.source_for_address(db, "10.241.250.8").instance["uuid"] == b
    assert lookup.source_for_address(db, "10.241.250.9") is None
    assert lookup.source_for_address(db, "127.0.0.1") is None
    # another host's instance is not this host's metadata service's business
    assert lookup.source_for_address(db, "10.241.250.7",
                                     host="compute-b") is None


def test_meta_data_json_has_what_cloud_init_needs(src):
    status, body, ctype = get(src, "/openstack/latest/meta_data.json")
    assert status == 200 and ctype == content.JSON_TYPE
    md = json.loads(body)
    inst = src.instance
    assert md["uuid"] == inst["uuid"]  # cloud-init's one required key
    assert md["hostname"] == "web" and md["name"] == "web"
    assert md["project_id"] == "p1" and md["launch_index"] == 0
    assert md["availability_zone"] == "nova"
    assert md["public_keys"] == {"k-web": KEY}
    assert md["keys"] == [{"name": "k-web", "type": "ssh", "data": KEY}]
    assert md["meta"] == {"role": "web"} and md["devices"] == []


def test_every_version_serves_the_same_and_listing_names_them(src):
    status, body, _ = get(src, "/openstack")
    versions = body.decode().splitlines()
    assert status == 200 and versions[-1] == "latest"
    assert "2018-08-27" in versions and "2012-08-10" in versions
    for v in versions:
        md = json.loads(get(src, f"/openstack/{v}/meta_data.json")[1])
        assert md["uuid"] == src.instance["uuid"]
    names = get(src, "/openstack/latest/")[1].decode().splitlines()
    assert {"meta_data.json", "network_data.json", "user_data",
            "vendor_data.json"} <= set(names)
    assert get(src, "/openstack/1999-01-01/meta_data.json")[0] == 404
    assert get(src, "/openstack/latest/nope.json")[0] == 404


def test_user_data_is_raw_and_404_when_absent(src, db):
    status, body, _ = get(src, "/openstack/latest/user_data")
    assert (status, body) == (200, b"#cloud-config\n\x00\xffraw")
    assert get(src, "/latest/user-data")[1] == b"#cloud-config\n\x00\xffraw"
    metadata_rows.add_instance(db, "10.241.250.20", name="plain")
    bare = lookup.source_for_address(db, "10.241.250.20")
    assert get(bare, "/openstack/latest/user_data")[0] == 404
    assert get(bare, "/latest/user-data")[0] == 404
    assert "user_data" not in get(bare, "/openstack/latest")[1].decode()


def test_network_data_shape(src):
    nd = json.loads(get(src, "/openstack/latest/network_data.json")[1])
    (link,) = nd["links"]
    (net,) = nd["networks"]
    port, _ = src.ports[0]
    assert link["ethernet_mac_address"] == port["mac_address"]
    assert link["mtu"] == 1450 and link["id"] == net["link"]
    assert net["type"] == "ipv4" and net["ip_address"] == "10.241.250.7"
    assert net["netmask"] == "255.255.255.0"
    assert net["routes"] == [{"network": "0.0.0.0", "netmask": "0.0.0.0",
                              "gateway": "10.241.250.1"}]
    assert nd["services"] == [{"type": "dns", "address": "10.241.250.1"}]
    assert json.loads(get(src, "/openstack/latest/vendor_data.json")[1]) == {}


def test_ec2_tree_as_cloud_init_materialises_it(src):
    assert get(src, "/")[1].decode().splitlines()[-2:] == ["latest",
                                                          "openstack"]
    top = get(src, "/latest/")[1].decode().splitlines()
    assert top == ["meta-data/", "user-data"]
    listing = get(src, "/latest/meta-data/")[1].decode().splitlines()
    for leaf in ("instance-id", "hostname", "local-hostname", "local-ipv4",
                 "ami-launch-index", "reservation-id", "instance-type"):
        assert leaf in listing
    assert "placement/" in listing and "public-keys/" in listing
    assert get(src, "/latest/meta-data/public-keys/")[1] == b"0=k-web"
    assert get(src, "/latest/meta-data/public-keys/0/")[1] == b"openssh-key"
    assert get(src, "/latest/meta-data/public-keys/0/openssh-key")[1] == \
        KEY.encode()
    assert get(src, "/latest/meta-data/local-ipv4")[1] == b"10.241.250.7"
    assert get(src, "/2009-04-04/meta-data/placement/availability-zone"
               )[1] == b"nova"
    assert get(src, "/latest/meta-data/instance-type")[1] == b"m1.tiny"
    assert get(src, "/latest/meta-data/instance-id")[1].startswith(b"i-")
    assert get(src, "/latest/meta-data/nope")[0] == 404
    assert get(src, "/latest/meta-data/hostname/x")[0] == 404


def test_config_drive_files(src):
    files = dict(content.config_drive_files(src))
    for v in ("latest", "2012-08-10"):
        md = json.loads(files[f"openstack/{v}/meta_data.json"])
        assert md["uuid"] == src.instance["uuid"]
        json.loads(files[f"openstack/{v}/network_data.json"])
        assert files[f"openstack/{v}/user_data"] == \
            b"#cloud-config\n\x00\xffraw"
        assert json.loads(files[f"openstack/{v}/vendor_data.json"]) == {}
    seed = json.loads(files["nocloud/meta-data"])
    assert seed["instance-id"] == src.instance["uuid"]
    assert seed["local-hostname"] == "web"
    assert files["nocloud/user-data"] == b"#cloud-config\n\x00\xffraw"
    net = json.loads(files["nocloud/network-config"])
    eth0 = net["ethernets"]["eth0"]
    assert net["version"] == 2 and eth0["addresses"] == ["10.241.250.7/24"]
    assert eth0["routes"] == [{"to": "0.0.0.0/0", "via": "10.241.250.1"}]
    assert all(not k.startswith("/") and ".." not in k for k in files)


def test_manager_fills_config_drive_files_only_when_asked(db):
    from pyct_driver.compute.specs import instance_spec
    from pyct_driver.db import instances as db_instances

    uuid = metadata_rows.add_instance(db, "10.241.250.30", name="cd")
    row = db_instances.get(db, uuid)
    assert instance_spec(db, row).config_drive_files == ()
    db_instances.update(db, uuid, {"config_drive": True})
    spec = instance_spec(db, db_instances.get(db, uuid))
    files = dict(spec.config_drive_files)
    assert spec.config_drive
    assert json.loads(files["openstack/latest/meta_data.json"])["uuid"] == uuid
