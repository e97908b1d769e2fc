"""``pyct-manage endpoint register``: put pyct into Keystone's catalog.

Creates the ``compute`` service (default name ``pyct``) with public,
internal and admin endpoints at ``<url>/v2.1``, and the ``image``
(``<url>/image``) and ``network`` (``<url>/networking``) services for the
Glance and Neutron subsets pyct serves. For those two, ``auto`` (the
default) leaves a cloud's own Glance or Neutron alone: if a service of
that type with another name exists, pyct's is not registered; ``register``
adds pyct's beside it (clients then choose by service name); ``skip``
never registers it. Idempotent: an existing service or endpoint is kept
(an endpoint whose URL changed is updated), so a second run creates
nothing. It talks to Keystone as the operator does with the openstack
CLI: the ``OS_*`` variables of an admin's openrc, or ``--os-cloud`` of a
clouds.yaml, read by openstacksdk.
"""

from __future__ import annotations

import os
from typing import Callable

from oslo_config import cfg

from pyct_driver import exception

INTERFACES = ("public", "internal", "admin")
# (service type, default name, path under the API's URL, description)
SERVICES = (
    ("compute", "pyct", "/v2.1", "Compute service (pyct, Nova API)"),
    ("image", "pyct-image", "/image", "Image service subset of pyct"),
    ("network", "pyct-network", "/networking",
     "Network service subset of pyct"),
)
MODES = ("auto", "register", "skip")


def add_parser(subparsers) -> None:
    endpoint = subparsers.add_parser(
        "endpoint", help="pyct's services and endpoints in Keystone")
    esub = endpoint.add_subparsers(dest="action", required=True)
    reg = esub.add_parser(
        "register", help="create (or keep) pyct's catalog entries; "
                         "credentials from OS_* or --os-cloud")
    reg.add_argument("--public-url",
                     help="base URL of pyct-api, e.g. http://ctl:8774 "
                          "(default: [api] public_endpoint)")
    reg.add_argument("--internal-url", help="default: the public URL")
    reg.add_argument("--admin-url", help="default: the internal URL")
    reg.add_argument("--region", default=os.environ.get(
        "OS_REGION_NAME", "RegionOne"))
    reg.add_argument("--os-cloud", default=os.environ.get("OS_CLOUD"),
                     help="cloud of clouds.yaml to authenticate as")
    reg.add_argument("--compute-name", default="pyct")
    for kind in ("image", "network"):
        # dest: conf.command.network would be the [network] group
        reg.add_argument(f"--{kind}", choices=MODES, default="auto",
                         dest=f"{kind}_mode",
                         help=f"auto: register pyct's {kind} service "
                              f"unless the cloud has its own; register: "
                              f"also beside it; skip: never")


def _connect(cloud: str | None, region: str):
    # imported here: only this command needs the SDK
    import openstack
    return openstack.connect(cloud=cloud, region_name=region)


def _ensure_endpoints(identity, service, urls: dict[str, str], region: str,
                      say: Callable[[str], None]) -> None:
    for iface in INTERFACES:
        found = [e for e in identity.endpoints(service_id=service.id,
                                               interface=iface)
                 if e.region_id == region]
        if not found:
            identity.create_endpoint(service_id=service.id, interface=iface,
                                     url=urls[iface], region_id=region,
                                     is_enabled=True)
            say(f"created {iface} endpoint {urls[iface]}")
        elif found[0].url != urls[iface]:
            identity.update_endpoint(found[0], url=urls[iface])
            say(f"updated {iface} endpoint {found[0].url} -> "
                f"{urls[iface]}")


def register(identity, base: dict[str, str], region: str,
             names: dict[str, str], modes: dict[str, str],
             say: Callable[[str], None] = print) -> None:
    """Create what is missing of pyct's services and endpoints through
    an openstacksdk identity proxy; ``base``: interface -> API URL."""
    if identity.find_region(region) is None:
        identity.create_region(id=region)
        say(f"created region {region}")
    for kind, default_name, path, description in SERVICES:
        name = names.get(kind, default_name)
        mode = modes.get(kind, "register")
        if mode == "skip":
            say(f"{kind}: skipped")
            continue
        same_type = list(identity.services(type=kind))
        mine = [s for s in same_type if s.name == name]
        others = sorted(s.name for s in same_type if s.name != name)
        if others and not mine and mode == "auto":
            say(f"{kind}: the cloud's {', '.join(others)} stays; "
                f"pyct's {path} is not registered")
            continue
        if mine:
            service = mine[0]
        else:
            service = identity.create_service(type=kind, name=name,
                                              description=description,
                                              is_enabled=True)
            say(f"created {kind} service {name} ({service.id})")
        urls = {i: base[i].rstrip("/") + path for i in INTERFACES}
        _ensure_endpoints(identity, service, urls, region,
                          lambda line, k=kind: say(f"{k}: {line}"))


def run(conf: cfg.ConfigOpts) -> int:
    cmd = conf.command
    public = cmd.public_url or conf.api.public_endpoint
    if not public:
        raise exception.InvalidInput(
            reason="give --public-url (or set [api] public_endpoint)")
    internal = cmd.internal_url or public
    base = {"public": public, "internal": internal,
            "admin": cmd.admin_url or internal}
    from keystoneauth1 import exceptions as ks_exc
    from openstack import exceptions as sdk_exc
    try:
        conn = _connect(cmd.os_cloud, cmd.region)
        register(conn.identity, base, cmd.region,
                 {"compute": cmd.compute_name},
                 {"image": cmd.image_mode, "network": cmd.network_mode})
    except (sdk_exc.OpenStackCloudException, ks_exc.ClientException) as err:
        raise exception.InvalidInput(
            reason=f"Keystone: {err} (source an admin openrc or give "
                   f"--os-cloud)") from err
    print("catalog up to date")
    return 0
