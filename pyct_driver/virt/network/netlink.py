"""Netlink sockets for the host and for guests' network namespaces.

The host side keeps one long-lived ``IPRoute`` (opening one costs ~1 ms of
asyncio setup) behind a lock, so the compute manager's threads share it. A
guest side socket is created by a short-lived thread that ``setns``-es into
``/proc/<pid>/ns/net``, opens a plain netlink socket there and exits: a
socket stays bound to the namespace it was created in, so the calling
thread can then drive it with ``IPRoute(fileno=...)`` without ever leaving
the host namespace. pyroute2 0.9's own ``IPRoute(netns=...)`` forks a helper
process per socket (measured ~7 ms, and a fork of a threaded process);
this costs ~0.7 ms. Every netlink error becomes a ``NetworkError`` here.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
import struct
import threading
from typing import Iterator

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from pyct_driver import exception
from pyct_driver.virt.kernel import proc

NETLINK_ROUTE = 0

@contextlib.contextmanager
def wrap(what: str) -> Iterator[None]:
    """Turn netlink/OS failures of one step into a NetworkError naming it."""
    try:
        yield
    except exception.PyctError:
        raise
    except (NetlinkError, OSError) as err:
        code = getattr(err, "code", None) or getattr(err, "errno", None)
        raise exception.NetworkError(
            reason=f"{what}: {err}", errno=code) from err


def is_errno(err: BaseException, *codes: int) -> bool:
    cause = err.__cause__ if isinstance(err, exception.PyctError) else err
    code = getattr(cause, "code", None) or getattr(cause, "errno", None)
    return code in codes


class HostNetlink:
    """The host namespace's one shared IPRoute, serialised by a lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        with wrap("open host netlink socket"):
            self.ipr = IPRoute()

    def close(self) -> None:
        with self.lock:
            self.ipr.close()

    def link_index(self, ifname: str) -> int | None:
        with self.lock, wrap(f"look up {ifname}"):
            found = self.ipr.link_lookup(ifname=ifname)
        return found[0] if found else None

    def links(self, prefix: str = "") -> list[dict]:
        """``{"ifname", "index", "master", "kind"}`` of links named prefix*."""
        out = []
        with self.lock, wrap("list links"):
            for link in self.ipr.get_links():
                name = link.get("ifname") or ""
                if not name.startswith(prefix):
                    continue
                info = link.get(("IFLA_LINKINFO", "IFLA_INFO_KIND"))
                out.append({"ifname": name, "index": link["index"],
                            "master": link.get("master"), "kind": info})
        return out

    def check_no_overlap(self, subnet: ipaddress.IPv4Network,
                         own_index: int | None) -> None:
        """Refuse a subnet overlapping any host route but the default ones.

        Routes through our own bridge (``own_index``) are ours: a second
        ``ensure_bridge`` must not trip over the first one's routes.
        """
        with self.lock, wrap("list host routes"):
            routes = self.ipr.get_routes(family=socket.AF_INET)
        for route in routes:
            if route["dst_len"] == 0:
                continue
            if own_index is not None and route.get("oif") == own_index:
                continue
            dst = route.get("dst")
            if not dst:
                continue
            net = ipaddress.ip_network(f"{dst}/{route['dst_len']}",
                                       strict=False)
            if net.overlaps(subnet):
                raise exception.NetworkError(
                    reason=f"subnet {subnet} overlaps host route {net} "
                           f"(table {route.get('table')}, "
                           f"oif {route.get('oif')})")


def _netns_socket_fd(pid: int, family: int = socket.AF_NETLINK,
                     kind: int = socket.SOCK_DGRAM,
                     proto: int = NETLINK_ROUTE) -> int:
    """A socket created inside /proc/<pid>/ns/net (netlink by default),
    as a bare fd."""
    result: dict = {}

    def run() -> None:
        # This thread's netns changes for good; it exits right after, so
        # no other code ever runs in the guest's namespace by accident.
        try:
            nsfd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as err:
            result["error"] = err
            return
        try:
            proc.setns(nsfd, proc.CLONE_NEWNET)
            sock = socket.socket(family, kind | socket.SOCK_CLOEXEC, proto)
            result["fd"] = sock.detach()
        except OSError as err:
            result["error"] = err
        finally:
            os.close(nsfd)

    thread = threading.Thread(target=run, name=f"pyct-netns-{pid}",
                              daemon=True)
    thread.start()
    thread.join()
    if "error" in result:
        err = result["error"]
        raise exception.NetworkError(
            reason=f"cannot enter network namespace of pid {pid}: {err}",
            errno=err.errno) from err
    return result["fd"]


@contextlib.contextmanager
def guest_netlink(pid: int) -> Iterator[IPRoute]:
    """An IPRoute speaking to the network namespace of ``pid``."""
    fd = _netns_socket_fd(pid)
    try:
        ipr = IPRoute(fileno=fd)
    except (NetlinkError, OSError) as err:
        os.close(fd)
        raise exception.NetworkError(
            reason=f"netlink socket in pid {pid}'s netns: {err}") from err
    try:
        yield ipr
    finally:
        ipr.close()


def announce(pid: int, ifname: str, mac: str, ip: str) -> None:
    """Send a gratuitous ARP for ``ip`` from ``ifname`` in pid's netns.

    An address freed by a deleted guest is soon handed to a new one with a
    new MAC; without this announcement its neighbours keep the old MAC
    cached and reach the new guest only when their entry expires (~45 s).
    """
    eth_p_arp = 0x0806
    fd = _netns_socket_fd(pid, socket.AF_PACKET, socket.SOCK_RAW,
                          socket.htons(eth_p_arp))
    hw = bytes.fromhex(mac.replace(":", ""))
    addr = socket.inet_aton(ip)
    frame = (b"\xff" * 6 + hw + struct.pack("!H", eth_p_arp)
             + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1)
             + hw + addr + b"\x00" * 6 + addr)
    with socket.socket(fileno=fd) as sock:
        try:
            sock.bind((ifname, eth_p_arp))
            sock.send(frame)
        except OSError as err:
            raise exception.NetworkError(
                reason=f"gratuitous ARP on {ifname} in pid {pid}'s netns: "
                       f"{err}") from err


def open_netns(pid: int) -> int:
    """An O_CLOEXEC fd on /proc/<pid>/ns/net; the caller closes it."""
    try:
        return os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise exception.NetworkError(
            reason=f"guest pid {pid} has no network namespace: {err}",
            errno=errno.ESRCH if err.errno == errno.ENOENT else err.errno,
        ) from err
