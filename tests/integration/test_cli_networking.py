"""Key pairs, networks and interfaces through the real openstack CLI.

One all-in-one (API + compute with the fake driver, in-process bus,
SQLite): ``keypair create``, ``network list``, ``server create --nic
net-id=… --key-name … --wait``, ``server show`` with its address, ``port
list --server``, ``server add network`` / ``server remove network``
(os-interface), and a delete that frees the address for the next server.
"""

from __future__ import annotations

import contextlib
import json
import os

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.integration.conftest import Pipeline


@pytest.fixture(scope="module")
def dep(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("clinet"))
    dep = Pipeline(workdir, f"sqlite:///{os.path.join(workdir, 'db.sqlite')}")
    dep.seed()
    with contextlib.ExitStack() as stack:
        stack.callback(dep.stop_all)
        proc = dep.start("pyct-all-in-one", host="aio")
        proc.wait_output("compute service on aio started")
        yield dep


def _write_pub(dep) -> str:
    path = os.path.join(dep.workdir, "k2.pub")
    with open(path, "w") as f:
        f.write(ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
            serialization.Encoding.OpenSSH,
            serialization.PublicFormat.OpenSSH).decode() + "\n")
    return path


def cli(dep, *args):
    return json.loads(dep.openstack(*args, "-f", "json").stdout)


def test_cli_keypair_network_server_interfaces(dep):
    # the CLI makes the key itself and imports its public half
    private = dep.openstack("keypair", "create", "k").stdout
    assert "PRIVATE KEY" in private
    key = cli(dep, "keypair", "show", "k")
    assert key["name"] == "k" and len(key["fingerprint"].split(":")) == 16
    cli(dep, "keypair", "create", "--public-key", _write_pub(dep), "k2")
    assert {k["Name"] for k in cli(dep, "keypair", "list")} == {"k", "k2"}
    assert cli(dep, "network", "list") == []

    # "auto" (the CLI's default at 2.37) makes the project's network
    first = cli(dep, "server", "create", "--flavor", "m1.tiny", "--image",
                dep.image_id, "--nic", "auto", "--wait", "first")
    nets = cli(dep, "network", "list")
    assert [n["Name"] for n in nets] == ["private"]
    net_id = nets[0]["ID"]

    vm = cli(dep, "server", "create", "--flavor", "m1.tiny", "--image",
             dep.image_id, "--nic", f"net-id={net_id}", "--key-name", "k",
             "--wait", "vm")
    assert vm["status"] == "ACTIVE" and vm["key_name"] == "k"
    shown = cli(dep, "server", "show", "vm")
    assert shown["addresses"] == {"private": ["10.246.0.3"]}
    ports = cli(dep, "port", "list", "--server", "vm")
    assert [p["Fixed IP Addresses"][0]["ip_address"] for p in ports] == [
        "10.246.0.3"]

    dep.openstack("server", "add", "network", "vm", net_id)
    shown = cli(dep, "server", "show", "vm")
    assert shown["addresses"] == {"private": ["10.246.0.3", "10.246.0.4"]}
    dep.openstack("server", "remove", "network", "vm", net_id)
    assert cli(dep, "server", "show", "vm")["addresses"] == {}

    dep.openstack("server", "delete", "--wait", "first")
    again = cli(dep, "server", "create", "--flavor", "m1.tiny", "--image",
                dep.image_id, "--nic", f"net-id={net_id}", "--wait", "again")
    assert cli(dep, "server", "show", again["id"])["addresses"] == {
        "private": ["10.246.0.2"]}
