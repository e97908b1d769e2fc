"""The documents a guest reads about itself, in the shapes cloud-init expects.

Built from one instance's ``lookup.Source`` (never from the request), they
serve two transports: the metadata service (``respond`` maps a request path
to a status, body and content type) and the config drive
(``config_drive_files`` gives the file map the driver binds into the guest).
Formats follow Nova's, which cloud-init's OpenStack, ConfigDrive, EC2 and
NoCloud datasources read:

- ``/openstack`` lists versions; ``/openstack/<version>/`` holds
  ``meta_data.json`` (``uuid`` is the one required key), ``user_data`` (raw,
  404 when there is none), ``network_data.json`` (links, networks,
  services), ``vendor_data.json`` and ``vendor_data2.json``; every version
  serves the same content.
- ``/<ec2 version>/meta-data/`` is a tree of plain-text listings (children
  end in ``/``; ``public-keys/`` lists ``0=<key name>`` and
  ``public-keys/0/`` lists ``openssh-key``); ``/<version>/user-data`` is raw.
- the NoCloud seed is ``meta-data``, ``user-data`` (always present, as
  NoCloud requires) and a version 2 ``network-config``; JSON, which is YAML.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import os

from pyct_driver import authorized_key
from pyct_driver.metadata.lookup import Source

# Nova's OpenStack metadata versions (cloud-init picks the newest it knows)
OPENSTACK_VERSIONS = ("2012-08-10", "2013-04-04", "2013-10-17", "2015-10-15",
                      "2016-06-30", "2016-10-06", "2017-02-22", "2018-08-27")
EC2_VERSIONS = ("1.0", "2007-01-19", "2007-03-01", "2007-08-29",
                "2007-10-10", "2007-12-15", "2008-02-01", "2008-09-01",
                "2009-04-04")
CONFIG_DRIVE_VERSIONS = ("2012-08-10", "latest")
DEFAULT_ZONE = "nova"

JSON_TYPE = "application/json"
TEXT_TYPE = "text/plain; charset=utf-8"
RAW_TYPE = "application/octet-stream"
Response = tuple[int, bytes, str]
NOT_FOUND: Response = (404, b"Not Found\n", TEXT_TYPE)


def _zone(inst: dict) -> str:
    return inst.get("availability_zone") or DEFAULT_ZONE


def user_data(src: Source) -> bytes | None:
    """The user data as the guest gave it at boot (the API stores it
    base64-encoded)."""
    raw = src.instance.get("user_data")
    if not raw:
        return None
    try:
        return base64.b64decode(raw)
    except (binascii.Error, ValueError):
        return raw.encode() if isinstance(raw, str) else bytes(raw)


def _keys(src: Source) -> list[dict]:
    """Nova's typed key list. An SSH key is given only as one checked
    authorized_keys line (no options, no second key), or not at all."""
    inst = src.instance
    data = inst.get("key_data")
    if data and src.key_type == "ssh":
        data = authorized_key.authorized_line(data)
    if not data:
        return []
    return [{"name": inst.get("key_name") or "key",
             "type": src.key_type, "data": data}]


def _ssh_keys(src: Source) -> list[dict]:
    """The keys for the places guests copy into authorized_keys."""
    return [k for k in _keys(src) if k["type"] == "ssh"]


def meta_data(src: Source) -> dict:
    """``openstack/<version>/meta_data.json``."""
    inst = src.instance
    keys = _keys(src)
    return {
        "uuid": inst["uuid"],
        "name": inst["name"],
        "hostname": inst["hostname"],
        "launch_index": inst.get("launch_index") or 0,
        "availability_zone": _zone(inst),
        "project_id": inst["project_id"],
        "public_keys": {k["name"]: k["data"] for k in _ssh_keys(src)},
        "keys": keys,
        "meta": {str(k): str(v)
                 for k, v in (inst.get("metadata") or {}).items()},
        "devices": [],
        # fresh on every read, as Nova does; seeds the guest's entropy
        "random_seed": base64.b64encode(os.urandom(512)).decode(),
    }


def _link_id(port: dict) -> str:
    return "tap" + port["id"][:11]


def network_data(src: Source) -> dict:
    """``openstack/<version>/network_data.json``: one link per port, one
    static IPv4 network on it; the default route only via the first."""
    links, networks, dns = [], [], []
    for i, (port, net) in enumerate(src.ports):
        cidr = ipaddress.ip_network(net["cidr"], strict=False)
        links.append({"id": _link_id(port), "vif_id": port["id"],
                      "type": "ethernet", "mtu": net.get("mtu") or 1500,
                      "ethernet_mac_address": port["mac_address"]})
        routes = []
        if i == 0 and net.get("gateway"):
            routes.append({"network": "0.0.0.0", "netmask": "0.0.0.0",
                           "gateway": net["gateway"]})
        services = [{"type": "dns", "address": a}
                    for a in net.get("dns_nameservers") or []]
        dns += [s for s in services if s not in dns]
        networks.append({
            "id": f"network{i}", "type": "ipv4", "link": _link_id(port),
            "ip_address": port["ip_address"], "netmask": str(cidr.netmask),
            "gateway": net.get("gateway"), "routes": routes,
            "network_id": net["id"], "services": services})
    return {"links": links, "networks": networks, "services": dns}


def _first_ip(src: Source) -> str:
    return src.ports[0][0]["ip_address"] if src.ports else ""


def ec2_meta_data(src: Source) -> dict:
    """The EC2 ``meta-data`` tree: dicts are directories, strings leaves."""
    inst = src.instance
    keys = _ssh_keys(src)
    hostname = inst["hostname"]
    image = str(inst.get("image_ref") or "").replace("-", "")[:8] or "0"
    tree: dict = {
        "ami-id": f"ami-{image}",
        "ami-launch-index": str(inst.get("launch_index") or 0),
        "ami-manifest-path": "FIXME",
        "block-device-mapping": {"ami": "vda", "root": "/dev/vda"},
        "hostname": hostname,
        "instance-action": "none",
        "instance-id": "i-%08x" % int(inst.get("id") or 0),
        "instance-type": str((inst.get("flavor") or {}).get("name", "")),
        "local-hostname": hostname,
        "local-ipv4": _first_ip(src),
        "placement": {"availability-zone": _zone(inst)},
        "public-hostname": hostname,
        "public-ipv4": "",
        "reservation-id": inst.get("reservation_id") or "",
        "security-groups": "default",
    }
    if keys:
        tree["public-keys"] = {str(i): {"openssh-key": k["data"]}
                               for i, k in enumerate(keys)}
    return tree


def _listing(node: dict, at_public_keys: bool, keys: list[dict]) -> bytes:
    if at_public_keys:
        lines = [f"{i}={k['name']}" for i, k in enumerate(keys)]
    else:
        lines = [k + "/" if isinstance(v, dict) else k
                 for k, v in sorted(node.items())]
    return "\n".join(lines).encode()


def _ec2(src: Source, parts: list[str]) -> Response:
    if not parts:
        names = ["meta-data/"] + (["user-data"] if user_data(src) else [])
        return 200, "\n".join(names).encode(), TEXT_TYPE
    if parts[0] == "user-data" and len(parts) == 1:
        data = user_data(src)
        return (200, data, RAW_TYPE) if data is not None else NOT_FOUND
    if parts[0] != "meta-data":
        return NOT_FOUND
    node: dict | str = ec2_meta_data(src)
    for name in parts[1:]:
        if not isinstance(node, dict) or name not in node:
            return NOT_FOUND
        node = node[name]
    if isinstance(node, str):
        return 200, node.encode(), TEXT_TYPE
    return 200, _listing(node, parts[1:] == ["public-keys"],
                         _ssh_keys(src)), TEXT_TYPE


def _json(doc: dict) -> bytes:
    return json.dumps(doc, sort_keys=True).encode()


def openstack_files(src: Source) -> dict[str, bytes]:
    """The files of one ``openstack/<version>/`` directory."""
    files = {"meta_data.json": _json(meta_data(src)),
             "network_data.json": _json(network_data(src)),
             "vendor_data.json": b"{}", "vendor_data2.json": b"{}"}
    data = user_data(src)
    if data is not None:
        files["user_data"] = data
    return files


def _openstack(src: Source, parts: list[str]) -> Response:
    if not parts:
        return (200, "\n".join(OPENSTACK_VERSIONS + ("latest",)).encode(),
                TEXT_TYPE)
    if parts[0] not in OPENSTACK_VERSIONS + ("latest",) or len(parts) > 2:
        return NOT_FOUND
    if len(parts) == 1:
        names = ["meta_data.json", "network_data.json", "vendor_data.json",
                 "vendor_data2.json"] + (["user_data"] if user_data(src)
                                         is not None else [])
        return 200, "\n".join(sorted(names)).encode(), TEXT_TYPE
    if parts[1] == "user_data":
        data = user_data(src)
        return (200, data, RAW_TYPE) if data is not None else NOT_FOUND
    if parts[1] == "meta_data.json":  # the one file not worth building all
        return 200, _json(meta_data(src)), JSON_TYPE
    body = openstack_files(src).get(parts[1])
    return (200, body, JSON_TYPE) if body is not None else NOT_FOUND


def respond(src: Source, path: str) -> Response:
    """The answer to a GET of ``path`` (query already stripped) from the
    guest ``src``."""
    parts = [p for p in path.split("/") if p]
    if not parts:
        versions = EC2_VERSIONS + ("latest", "openstack")
        return 200, "\n".join(versions).encode(), TEXT_TYPE
    if parts[0] == "openstack":
        return _openstack(src, parts[1:])
    if parts[0] in EC2_VERSIONS + ("latest",):
        return _ec2(src, parts[1:])
    return NOT_FOUND


def nocloud_network_config(src: Source) -> dict:
    """cloud-init network config version 2, for the NoCloud seed."""
    ethernets = {}
    for i, (port, net) in enumerate(src.ports):
        prefix = ipaddress.ip_network(net["cidr"], strict=False).prefixlen
        index = port["device_index"]
        name = f"eth{i if index is None else index}"
        eth: dict = {"match": {"macaddress": port["mac_address"]},
                     "set-name": name,
                     "addresses": [f"{port['ip_address']}/{prefix}"],
                     "mtu": net.get("mtu") or 1500}
        if i == 0 and net.get("gateway"):
            eth["routes"] = [{"to": "0.0.0.0/0", "via": net["gateway"]}]
        if net.get("dns_nameservers"):
            eth["nameservers"] = {"addresses": list(net["dns_nameservers"])}
        ethernets[name] = eth
    return {"version": 2, "ethernets": ethernets}


def config_drive_files(src: Source) -> tuple[tuple[str, bytes], ...]:
    """The config drive's files (path relative to the drive -> content):
    the OpenStack tree under ``openstack/``, the EC2 metadata cloud-init's
    ConfigDrive reader also takes, and the NoCloud seed under
    ``nocloud/``."""
    files: dict[str, bytes] = {}
    per_version = openstack_files(src)
    for version in CONFIG_DRIVE_VERSIONS:
        for name, data in per_version.items():
            files[f"openstack/{version}/{name}"] = data
    files["ec2/latest/meta-data.json"] = _json(ec2_meta_data(src))
    files.update(nocloud_files(src))
    return tuple(sorted(files.items()))


def nocloud_files(src: Source) -> dict[str, bytes]:
    """The NoCloud seed under ``nocloud/`` (needs only the instance's
    uuid, hostname, key and user data, and its ports)."""
    inst = src.instance
    seed = {"instance-id": inst["uuid"],
            "local-hostname": inst["hostname"],
            "public-keys": [k["data"] for k in _ssh_keys(src)]}
    files = {"nocloud/meta-data": _json(seed),
             "nocloud/user-data": user_data(src) or b""}
    if src.ports:
        files["nocloud/network-config"] = _json(nocloud_network_config(src))
    return files
