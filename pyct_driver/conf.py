"""Every configuration option of pyct, in oslo.config groups.

Options are declared here and registered on the global ``CONF`` when this
module is imported; only composition roots (``cmd/*``, the API app factory,
the compute manager, the container driver) read ``CONF`` — everything else
gets its settings as constructor arguments. ``list_opts`` feeds
``oslo-config-generator`` (namespace ``pyct``) so ``etc/pyct/pyct.conf.sample``
always shows every option with its help.
"""

from __future__ import annotations

import socket

from oslo_config import cfg

from pyct_driver.options import container as container_options
from pyct_driver.options import image as image_opts
from pyct_driver.options import migration as migration_opts
from pyct_driver.options import notifications as notifications_opts
from pyct_driver.options import quota
from pyct_driver.options import serial_console as serial_console_opts
from pyct_driver.options import timeouts as timeout_opts
from pyct_driver.options import upgrade_levels

CONF = cfg.CONF

default_opts = [
    cfg.StrOpt("host", default=socket.gethostname(),
               sample_default="<hostname>",
               help="Name of this node; the compute service's RPC server "
                    "name and the instances' host field."),
    cfg.StrOpt("virt_driver", default="fake",
               help="Virt driver loaded from the stevedore namespace "
                    "pyct_driver.virt_drivers: 'container' (real Linux "
                    "containers, needs root) or 'fake' (in memory)."),
    cfg.StrOpt("state_path", default="/var/lib/pyct",
               help="Top-level directory for pyct's state on this host."),
    cfg.IntOpt("report_interval", default=10, min=1,
               help="Seconds between compute service heartbeats."),
    cfg.IntOpt("service_down_time", default=60, min=1,
               help="A compute service whose last heartbeat is older than "
                    "this many seconds is considered down."),
    cfg.StrOpt("default_availability_zone", default="nova",
               help="The availability zone of compute hosts in no "
                    "aggregate with an availability_zone."),
    cfg.StrOpt("internal_service_availability_zone", default="internal",
               help="The availability zone of services that host no "
                    "instances; never listed, never bootable."),
    cfg.StrOpt("my_ip", sample_default="<host_ipv4>",
               help="This host's IP address, shown as the hypervisor's "
                    "host_ip; default: the address of the interface of "
                    "the default route."),
    cfg.IntOpt("sync_power_state_interval", default=60, min=-1,
               help="Seconds between power-state syncs with the driver; "
                    "-1 disables the periodic task."),
    cfg.IntOpt("resize_confirm_window", default=0, min=0,
               help="Seconds after which a resize waiting for a confirm "
                    "(VERIFY_RESIZE) is confirmed by the compute service; "
                    "0 disables the automatic confirm (as in Nova)."),
    cfg.IntOpt("shelved_offload_time", default=0, min=-1,
               help="Seconds a shelved server keeps its host before the "
                    "compute service offloads it; 0 offloads at once, "
                    "-1 never (as in Nova)."),
]

api_opts = [
    cfg.HostAddressOpt("listen", default="127.0.0.1",
                       help="Address the built-in API server binds to."),
    cfg.PortOpt("port", default=8774,
                help="Port the built-in API server listens on."),
    cfg.IntOpt("threads", default=16, min=1,
               help="Worker threads of the built-in API server."),
    cfg.BoolOpt("enable_instance_password", default=True,
                help="Answer a rescue with the root password it set "
                     "(adminPass), as Nova's [api] option of this name."),
    cfg.StrOpt("auth_strategy", default="noauth",
               choices=[("noauth", "X-Auth-Token is 'user:project'; no "
                                   "password check (development only)."),
                        ("keystone", "Tokens are validated by Keystone "
                                     "through keystonemiddleware's "
                                     "auth_token, configured in "
                                     "[keystone_authtoken].")],
               help="How API requests are authenticated."),
    cfg.BoolOpt("allow_noauth_off_loopback", default=False,
                help="Let pyct-api start with auth_strategy=noauth while "
                     "listen is not a loopback address. noauth trusts any "
                     "'user:project' token, so anyone who reaches the port "
                     "is admin of every project; off, pyct-api refuses to "
                     "start in that case."),
    cfg.ListOpt("noauth_roles", default=["member", "reader"],
                help="Roles every noauth user gets, with the roles they "
                     "imply as Keystone infers them (admin implies member, "
                     "member implies reader): 'member' alone gives member "
                     "and reader."),
    cfg.ListOpt("noauth_admin_users", default=["admin"],
                help="noauth users who also get the admin role (and so "
                     "member and reader)."),
    cfg.ListOpt("noauth_reader_users", default=["reader"],
                help="noauth users who get only the reader role, whatever "
                     "noauth_roles and noauth_admin_users say: they read "
                     "their project's resources and change nothing (the "
                     "project reader persona, e.g. token 'reader:demo' or "
                     "--os-username reader). Roles come only from these "
                     "options, never from request headers, so a client "
                     "cannot raise its own; but noauth checks no "
                     "password, so anyone may name any user."),
    cfg.IntOpt("max_request_body_size", default=114688, min=1024,
               help="Largest request body accepted, in bytes; larger "
                    "bodies get 413."),
    cfg.IntOpt("max_limit", default=1000, min=1,
               help="Most items one list request returns."),
    cfg.IntOpt("max_instances_per_request", default=100, min=1,
               help="Largest max_count accepted by server create."),
    cfg.StrOpt("public_endpoint",
               help="Base URL clients reach the API at, used in links; "
                    "default is the request's own host URL."),
    cfg.IntOpt("image_member_quota", default=128, min=-1,
               help="Most projects one image may be shared with (Glance's "
                    "image_member_quota); -1 means no limit."),
]

database_opts = [
    cfg.StrOpt("connection", secret=True,
               default="sqlite:////var/lib/pyct/pyct.sqlite",
               help="SQLAlchemy URL of the database, e.g. "
                    "postgresql+psycopg2://user:pw@host/pyct or "
                    "mysql+pymysql://user:pw@host/pyct."),
    cfg.IntOpt("max_pool_size", default=10, min=1,
               help="Connections kept in the pool (not for SQLite)."),
    cfg.BoolOpt("connection_debug", default=False,
                help="Log every SQL statement."),
]

compute_opts = [
    cfg.IntOpt("shutdown_timeout", default=60, min=0,
               help="Seconds a soft reboot or stop waits for the guest to "
                    "shut itself down before it is killed."),
    cfg.FloatOpt("cpu_allocation_ratio", default=16.0, min=0.0,
                 help="Virtual CPUs schedulable per host CPU."),
    cfg.FloatOpt("ram_allocation_ratio", default=1.0, min=0.0,
                 help="RAM schedulable per MiB of host RAM."),
    cfg.FloatOpt("disk_allocation_ratio", default=1.0, min=0.0,
                 help="Root and ephemeral disk schedulable per GiB a "
                      "compute host reports for instances (its file "
                      "system's free space plus its instance disks, minus "
                      "reserved_host_disk_mb). Above 1.0 needs [container] "
                      "preallocate_images=none."),
    cfg.IntOpt("reserved_host_memory_mb", default=512, min=0,
               help="Host RAM kept away from instances."),
    cfg.IntOpt("reserved_host_disk_mb", default=1024, min=0,
               help="Disk kept away from instances on the file system "
                    "that holds their disks (the container driver's "
                    "base_dir), for pyct's own state (database, image "
                    "cache, console logs) and the host. The compute host "
                    "reports what its file system can still give plus "
                    "what its instance disks hold, minus this (rounded up "
                    "to GiB, as Nova does); the container driver also "
                    "refuses a disk that would leave less than this "
                    "free."),
    cfg.IntOpt("rpc_threads", default=16, min=1,
               help="Threads serving RPC requests in the compute service."),
]

fake_opts = [
    cfg.IntOpt("vcpus", default=64, min=1,
               help="vCPUs the fake driver reports."),
    cfg.IntOpt("memory_mb", default=131072, min=1,
               help="RAM the fake driver reports, in MiB."),
    cfg.IntOpt("local_gb", default=2048, min=1,
               help="Disk the fake driver reports, in GiB."),
    cfg.FloatOpt("spawn_delay", default=0.0, min=0.0,
                 help="Seconds the fake driver's spawn takes (tests)."),
    cfg.FloatOpt("operation_delay", default=0.0, min=0.0,
                 help="Seconds the fake driver's apply_flavor, snapshot "
                      "and send_guest take (tests stop a compute service "
                      "in the middle of a resize, snapshot or migration)."),
    cfg.StrOpt("call_log",
               help="A file the fake driver appends a line to for each "
                    "spawn, reboot, power_off, power_on and destroy "
                    "('<call> <instance uuid>'), so a test counts the "
                    "calls a compute service in another process made."),
]

container_opts = container_options.OPTS

network_opts = [
    cfg.StrOpt("pool_cidr", default="10.241.0.0/16",
               help="IPv4 range project subnets are carved from. It must "
                    "not overlap any route of the host; pyct refuses it "
                    "otherwise."),
    cfg.IntOpt("subnet_prefixlen", default=24, min=16, max=29,
               help="Prefix length of each project subnet."),
    cfg.IntOpt("mtu", default=1500, min=576, max=9000,
               help="MTU of project networks (bridges, veths, guests)."),
    cfg.StrOpt("tunnel_address", default="",
               help="This host's IPv4 address on the underlay that joins "
                    "the compute hosts (its VXLAN tunnel endpoint). Set: "
                    "each project network with a VNI gets a VXLAN port "
                    "(UDP 4789, no multicast, forwarding entries only for "
                    "the other hosts having ports on it, from the "
                    "database) and an MTU lower by 50, so one network "
                    "spans hosts. VXLAN is unauthenticated: the underlay "
                    "must be a trusted network. Empty: each host's "
                    "bridges stand alone."),
    cfg.ListOpt("dns_nameservers", default=[],
                help="Nameservers of new project networks (a network keeps "
                     "the list it was made with, as a Neutron subnet's "
                     "dns_nameservers), given to its guests' "
                     "/etc/resolv.conf by injection, the metadata service "
                     "and the config drive. Empty: the network's gateway "
                     "while dns_forwarder is on (guests reach no other "
                     "resolver: there is no NAT), else none (the image's "
                     "own resolv.conf stays)."),
    cfg.BoolOpt("dns_forwarder", default=True,
                help="Answer DNS on each project network's gateway address "
                     "(UDP and TCP port 53), for that network's own guests "
                     "only, forwarding their questions to dns_upstreams, "
                     "as Neutron's per-subnet dnsmasq does. The guests' "
                     "port filters let UDP/TCP 53 to the gateway through "
                     "only while this is on. Zone transfers, ANY, classes "
                     "other than IN, addresses of single-label names, "
                     ".local, localhost and reverse lookups within "
                     "private, loopback, link-local and other "
                     "special-purpose blocks are refused (the host "
                     "resolver's local names stay the host's). Off: no "
                     "listener and no filter rule."),
    cfg.ListOpt("dns_upstreams", default=[],
                help="Resolvers the DNS forwarder asks, each an IP, IP:port "
                     "or [IPv6]:port. Empty: the nameservers of the host's "
                     "/etc/resolv.conf when pyct-compute starts."),
    cfg.IntOpt("dns_queries_per_second", default=100, min=1,
               help="Queries a second the DNS forwarder takes from one "
                    "guest address (bursts of twice this); more are "
                    "dropped."),
    cfg.BoolOpt("egress_nat", default=False,
                help="Let guests reach the outside through the host: "
                     "their traffic leaving by external_interface is "
                     "masqueraded to its address (nf_tables table ip "
                     "pyct_nat; needs python3-nftables). Guests still "
                     "reach no other host address and no other project "
                     "network. Off: project networks reach only their own "
                     "members, the gateway and the metadata service."),
    cfg.StrOpt("external_interface", default="",
               help="The host's interface towards the outside (required "
                    "with egress_nat): where masqueraded and floating-IP "
                    "traffic leaves and arrives. pyct turns IPv4 "
                    "forwarding on for it."),
    cfg.StrOpt("floating_ip_range", default="",
               help="The external network's floating IPs (a CIDR, e.g. "
                    "203.0.113.0/24): projects hold addresses of it and "
                    "associate them with ports (Neutron's floatingips "
                    "API); each is 1:1 NATed to its port's fixed IP by "
                    "the server's host (needs egress_nat). The upstream "
                    "router must route the range to the compute hosts' "
                    "external addresses. Empty: no external network, no "
                    "floating IPs."),
    cfg.StrOpt("floating_network_name", default="public",
               help="Name of the external network floating IPs come "
                    "from (what `openstack floating ip create` names)."),
    cfg.StrOpt("default_network_name", default="private",
               help="Name of the network networks='auto' creates for a "
                    "project on first use."),
]

metadata_opts = [
    cfg.StrOpt("address", default="169.254.169.254",
               help="Address guests reach the metadata service at."),
    cfg.PortOpt("port", default=80,
                help="Port of the metadata service. 0 turns the service "
                     "off: no listener, no metadata address on the "
                     "project bridges, no route to it in guests, and the "
                     "guests' filters let nothing through to it. Guests "
                     "then get their data only from a config drive (see "
                     "force_config_drive)."),
    cfg.BoolOpt("force_config_drive", default=False,
                help="Give every instance a config drive, not only those "
                     "booted with config_drive=true."),
]

_GROUPS: list[tuple[str | None, list[cfg.Opt]]] = [
    (None, default_opts),
    ("api", api_opts),
    ("database", database_opts),
    ("compute", compute_opts),
    ("fake_driver", fake_opts),
    ("container", container_opts),
    ("network", network_opts),
    ("metadata", metadata_opts),
]

# Option groups of later areas live in their own module of
# ``pyct_driver.options`` (``GROUP``, ``OPTS``) and are listed here.
_OPTION_MODULES: tuple = (quota, notifications_opts, serial_console_opts,
                          image_opts, upgrade_levels, migration_opts,
                          timeout_opts)
_GROUPS += [(module.GROUP, module.OPTS) for module in _OPTION_MODULES]

for _group, _opts in _GROUPS:
    CONF.register_opts(_opts, group=_group)


def list_opts() -> list[tuple[str | None, list[cfg.Opt]]]:
    """Options of pyct by group, for oslo-config-generator."""
    return [(group, list(opts)) for group, opts in _GROUPS]
