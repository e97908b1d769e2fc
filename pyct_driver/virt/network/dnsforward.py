"""The DNS forwarder on each project network's gateway, as Neutron's
per-subnet dnsmasq offers one: UDP and TCP port 53 on the gateway address,
forwarding to the host's own resolvers (guests have no route to them).

``NetworkPlumber`` calls ``serve`` for each bridge it ensures and
``stop_serving`` before it removes one. Every network gets its own two
sockets (``dnslisten``), bound to the gateway address and to the bridge
device, so only packets that came in on that network's bridge reach
them. The ports' filters (``antispoof``) already limit a guest to its own
address and gateway; here a query is answered only from an address of
the network's own subnet. Nothing a guest sends goes upstream as it was
sent: ``dnsmsg`` parses and judges the question and builds a fresh query,
sent from a fresh socket connected to the upstream (a random source port
per query, and only the upstream's answer is read; ``dnsupstream``). What
a guest may cost is bounded (``dnslimits``: queries a second, questions
waiting, TCP connections and their time, and a read budget per network
that leaves a flood to the kernel); replies are never larger than the
guest asked for. UDP is served by one thread (epoll); each TCP
connection, rare (only after a truncated answer), by a thread of its own.
"""

from __future__ import annotations

import collections
import dataclasses
import ipaddress
import logging
import selectors
import socket
import threading
import time

from pyct_driver.virt.network import dnslimits as limits
from pyct_driver.virt.network import dnslisten, dnsmsg, dnsupstream

LOG = logging.getLogger(__name__)
Upstream = dnsupstream.Upstream
_Network = dnslisten.Network


@dataclasses.dataclass
class _Pending:
    net: _Network
    client: tuple[str, int]
    query: dnsmsg.Query
    ident: int = 0
    upstream: int = -1
    sock: socket.socket | None = None
    deadline: float = 0.0


class DnsForwarder:
    """The forwarder of every network this host serves."""

    def __init__(self, upstreams: list[Upstream] | tuple[Upstream, ...],
                 rate: float = 100.0) -> None:
        self.upstreams = tuple(upstreams)
        self.stats: collections.Counter = collections.Counter()
        self._buckets = limits.Buckets(rate)
        self._nets: dict[str, _Network] = {}
        self._pending: dict[socket.socket, _Pending] = {}
        self._waiting = limits.Holds()  # questions waiting upstream
        self._tcp = limits.Holds()  # TCP connections
        self._lock = threading.Lock()
        self._sel = selectors.DefaultSelector()  # epoll: no fd limit
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_w.setblocking(False)  # a full pipe wakes it already
        self._sel.register(self._wake_r, selectors.EVENT_READ, ("wake", None))
        self._thread: threading.Thread | None = None
        self._stopping = False
        if not self.upstreams:
            LOG.warning("DNS forwarder has no upstream resolver: guests' "
                        "queries get SERVFAIL ([network] dns_upstreams)")

    # -- networks ------------------------------------------------------------
    def serve(self, network_id: str, ifname: str, ifindex: int,
              gateway: str, prefixlen: int) -> None:
        """Answer on ``gateway``:53 for the network's bridge ``ifname``
        (idempotent; a bridge made anew gets new sockets)."""
        iface = ipaddress.IPv4Interface(f"{gateway}/{prefixlen}")
        with self._lock:
            old = self._nets.get(network_id)
            if old and (old.ifindex, old.gateway, old.subnet) == (
                    ifindex, iface.ip, iface.network):
                return
            if old:
                self._close_net(self._nets.pop(network_id))
            net = dnslisten.listen(network_id, ifname, ifindex, iface)
            self._nets[network_id] = net
            self._watch(net)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, daemon=True, name="dns-forwarder")
                self._thread.start()
        self._wake()

    def stop_serving(self, network_id: str) -> None:
        with self._lock:
            net = self._nets.pop(network_id, None)
            if net:
                self._close_net(net)

    def serves(self, network_id: str) -> bool:
        return network_id in self._nets  # (a dict look is atomic)

    def _watch(self, net: _Network) -> None:
        self._sel.register(net.udp, selectors.EVENT_READ, ("udp", net))
        self._sel.register(net.tcp, selectors.EVENT_READ, ("tcp", net))

    def _close_net(self, net: _Network) -> None:
        net.closed = True
        for sock in (net.udp, net.tcp):
            if not net.paused:
                self._sel.unregister(sock)
            sock.close()
        for pending in [p for p in self._pending.values() if p.net is net]:
            self._finish(pending)

    def close(self) -> None:
        with self._lock:
            self._stopping = True
            for net in list(self._nets.values()):
                self._close_net(net)
            self._nets.clear()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._sel.close()
        self._wake_r.close()
        self._wake_w.close()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    # -- the UDP loop --------------------------------------------------------
    def _run(self) -> None:
        while True:
            paused = any(n.paused for n in list(self._nets.values()))
            events = self._sel.select(timeout=0.05 if paused else 0.25)
            with self._lock:
                if self._stopping:
                    for pending in list(self._pending.values()):
                        self._finish(pending)
                    return
                for key, _mask in events:
                    try:
                        self._event(*key.data)
                    except Exception:  # one bad event must not stop DNS
                        LOG.exception("DNS forwarder event failed")
                self._expire(time.monotonic())

    def _event(self, kind: str, obj) -> None:
        if kind == "wake":
            self._wake_r.recv(4096)
        elif kind == "udp" and not obj.closed:
            for _ in range(64):  # then the others get their turn
                if not self._spend(obj):
                    return
                try:
                    data, client = obj.udp.recvfrom(dnsmsg.MAX_QUERY + 1)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError:
                    return
                self._on_query(obj, data, client)
        elif kind == "tcp" and not obj.closed and self._spend(obj):
            self._on_accept(obj)
        elif kind == "up" and obj.sock is not None:
            self._on_upstream(obj)

    def _spend(self, net: _Network) -> bool:
        """Count one packet (or connection) against ``net``'s budget;
        once it is spent, its sockets go unread until the window ends
        (the kernel drops what overflows them): a flood costs this
        process little, and only its own network is slowed."""
        now = time.monotonic()
        if now >= net.window_end:
            net.window_end, net.spent = now + limits.WINDOW, 0
        net.spent += 1
        if net.spent <= limits.NETWORK_BUDGET:
            return True
        self.stats["network_paused"] += 1
        net.paused = True
        for sock in (net.udp, net.tcp):
            self._sel.unregister(sock)
        return False

    def _admit(self, net: _Network, ip: str) -> bool:
        if not net.member(ip):
            self.stats["foreign"] += 1
            return False
        if not self._buckets.take(ip, time.monotonic()):
            self.stats["rate_limited"] += 1
            return False
        return True

    def _judge(self, data: bytes) -> tuple[dnsmsg.Query | None, bytes | None]:
        """(query to forward, None) or (None, the reply to give now, or
        None for no reply)."""
        try:
            query = dnsmsg.parse_query(data)
        except dnsmsg.BadQuery as bad:
            self.stats["malformed"] += 1
            if bad.rcode is None or bad.query is None:
                return None, None
            return None, dnsmsg.error_reply(bad.query, bad.rcode)
        rcode = dnsmsg.refusal(query)
        if rcode is not None:
            self.stats["refused"] += 1
            return None, dnsmsg.error_reply(query, rcode)
        return query, None

    def _on_query(self, net: _Network, data: bytes,
                  client: tuple[str, int]) -> None:
        ip = client[0]
        if not self._admit(net, ip):
            return
        query, reply = self._judge(data)
        if query is None:
            if reply is not None:
                self._send(net, client, reply)
            return
        if (self._waiting.count(ip) >= limits.PENDING_PER_GUEST
                or self._waiting.count(limits.ALL) >= limits.PENDING_TOTAL):
            self.stats["too_many_pending"] += 1
            return
        pending = _Pending(net, client, query)
        self._waiting.take(ip)
        self._ask_next(pending)

    def _ask_next(self, pending: _Pending) -> None:
        """Send the question to the next upstream; SERVFAIL when none
        is left."""
        self._drop_socket(pending)
        while pending.upstream + 1 < len(self.upstreams):
            pending.upstream += 1
            upstream = self.upstreams[pending.upstream]
            try:
                sock, pending.ident = dnsupstream.udp_ask(upstream,
                                                          pending.query)
            except OSError as err:
                LOG.debug("DNS upstream %s: %s", upstream, err)
                continue
            pending.sock = sock
            pending.deadline = time.monotonic() + dnsupstream.TIMEOUT
            self._pending[sock] = pending
            self._sel.register(sock, selectors.EVENT_READ, ("up", pending))
            return
        self.stats["servfail"] += 1
        self._send(pending.net, pending.client,
                   dnsmsg.error_reply(pending.query, dnsmsg.SERVFAIL))
        self._finish(pending)

    def _on_upstream(self, pending: _Pending) -> None:
        while pending.sock is not None:
            try:
                reply = pending.sock.recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. refused: that upstream is down
                self._ask_next(pending)
                return
            if dnsmsg.matches(reply, pending.query, pending.ident):
                self.stats["answered"] += 1
                self._send(pending.net, pending.client, dnsmsg.for_client(
                    reply, pending.query, pending.query.limit))
                self._finish(pending)
                return

    def _expire(self, now: float) -> None:
        for pending in list(self._pending.values()):
            if pending.deadline <= now:
                self._ask_next(pending)
        for net in self._nets.values():
            if net.paused and now >= net.window_end:
                net.paused = False
                self._watch(net)

    def _send(self, net: _Network, client: tuple[str, int],
              data: bytes) -> None:
        if net.closed:
            return
        try:
            net.udp.sendto(data, client)
        except OSError as err:
            LOG.debug("DNS reply to %s: %s", client, err)

    def _drop_socket(self, pending: _Pending) -> None:
        if pending.sock is not None:
            self._pending.pop(pending.sock, None)
            self._sel.unregister(pending.sock)
            pending.sock.close()
            pending.sock = None

    def _finish(self, pending: _Pending) -> None:
        self._drop_socket(pending)
        pending.upstream = len(self.upstreams)  # nothing more to try
        self._waiting.give_back(pending.client[0])

    # -- TCP -----------------------------------------------------------------
    def _on_accept(self, net: _Network) -> None:
        try:
            conn, client = net.tcp.accept()
        except OSError:
            return
        ip = client[0]
        if not self._admit(net, ip):  # a connection costs a query
            conn.close()
            return
        if (self._tcp.count(ip) >= limits.TCP_PER_GUEST
                or self._tcp.count(net.network_id) >= limits.TCP_PER_NETWORK
                or self._tcp.count(limits.ALL) >= limits.TCP_TOTAL):
            self.stats["too_many_tcp"] += 1
            conn.close()
            return
        self._tcp.take(ip, net.network_id)
        threading.Thread(target=self._tcp_session, args=(net, conn, ip),
                         daemon=True, name=f"dns-tcp-{ip}").start()

    def _tcp_session(self, net: _Network, conn: socket.socket,
                     ip: str) -> None:
        try:
            with conn:
                while not net.closed:
                    data = dnsupstream.read_message(conn, dnsmsg.MAX_QUERY,
                                                    limits.TCP_IDLE)
                    if data is None:
                        return
                    with self._lock:
                        if not self._admit(net, ip):
                            return
                        query, reply = self._judge(data)
                    if query is not None:
                        reply = dnsupstream.tcp_ask(self.upstreams, query)
                        with self._lock:
                            self.stats["answered" if reply
                                       else "servfail"] += 1
                        reply = reply or dnsmsg.error_reply(
                            query, dnsmsg.SERVFAIL)
                    if reply is None:
                        return
                    # (a total bound: sendall's timeout is for all of it)
                    conn.settimeout(limits.TCP_IDLE)
                    conn.sendall(len(reply).to_bytes(2, "big") + reply)
        except OSError:
            pass
        finally:
            with self._lock:
                self._tcp.give_back(ip, net.network_id)
