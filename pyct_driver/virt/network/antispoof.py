"""Anti-spoofing and destination rules on a port: an eBPF tc filter on the
host end of its veth.

Everything the guest sends arrives on the host end's ingress. An ingress
qdisc there holds one ``bpf`` filter in direct-action mode whose program
(assembled here; ``tcfilter`` loads and attaches it) decides per frame::

    a VLAN tag (802.1Q or 802.1ad, in the frame or in skb->vlan_tci)
                                                              → drop
    source MAC != port MAC                                    → drop
    ARP (Ethernet/IPv4, request or reply) with sender MAC == port MAC,
        sender IP == port IP (or 0.0.0.0, an address probe) and target
        IP in the port's subnet or the metadata address       → pass
    IPv4 with source IP != port IP                            → drop
    IPv4 to the metadata address: TCP to its port only        → pass
    IPv4 to the gateway: ICMP echo or echo reply, or TCP with
        ACK set (replies on connections the host opened), or
        UDP/TCP to port 53 while the DNS forwarder is on      → pass
    IPv4 to any other address of the port's subnet
        (siblings, subnet broadcast; fragments and options)  → pass
    with egress NAT on (``outside``): IPv4 to any other
        unicast address (routed by the host; its nf_tables
        table ``nat`` decides what leaves and drops what
        would reach another host address)                     → pass
    anything else (IPv6, runts, other addresses,
        255.255.255.255, multicast)                           → drop

With the metadata service off (port 0) the metadata rules are left out:
the address is then like any other outside the subnet; with the DNS
forwarder off (``dns`` False) so is port 53 of the gateway.

The destination rules exist because the host is a weak-host-model router
with forwarding off: it still accepts a packet for ANY of its addresses
(uplink, other bridges' gateways, the metadata address on any port)
arriving on a bridge, so without them a guest reaches every host service
listening on 0.0.0.0. The ARP target rule is the same for the link layer:
a guest learns no host address but its gateway (and the metadata
address); the bridge's ``arp_ignore`` (``bridge``) is the kernel's second
line for it. The host's veth end strips a tag written in the frame into
skb->vlan_tci before tc runs, so the frame the program reads looks
untagged: the tag test reads ``__sk_buff.vlan_present``.
Packets the host itself receives (gateway, metadata)
must be plain: no IP options (a source-route option could re-target the
packet at another host address) and no fragments (the L4 header is only in
the first one, and lone fragments sit in the host's reassembly memory).
Limited broadcast is dropped: pyct configures addresses itself, no DHCP.
A subnet broadcast must pass (siblings get it) but the bridge hands the host
a copy too, which UDP sockets bound to 0.0.0.0 would get: a second program
(``bridge_program``) on the bridge's own ingress lets the host's stack
receive only ARP and the services above.

Why eBPF and not u32/flower/basic+gact: hosts like this one build only
cls_u32 and cls_bpf, without the gact action u32 would need to drop, and
pyroute2 0.9 has no flower. A direct-action program needs no action module.
The filter is installed while the host end is still down, so no frame passes
before it exists. The program is under 80 instructions: checks cost
nanoseconds.
"""

from __future__ import annotations

import ipaddress

from pyct_driver import exception
from pyct_driver.virt.kernel import ebpf
from pyct_driver.virt.network import netlink, tcfilter

TC_ACT_OK = 0
TC_ACT_SHOT = 2

# Offsets from the Ethernet header (cls_bpf pushes it back on ingress).
ETH_SRC = 6
ETH_TYPE = 12
IP_VHL = 14           # version and header length: 0x45 means no options
IP_FRAG = 14 + 6      # flags and fragment offset
IP_PROTO = 14 + 9
IP_SADDR = 14 + 12
IP_DADDR = 14 + 16
L4 = 14 + 20          # only where IP_VHL was checked to be 0x45
IP_MF_OFFSET = 0x3FFF
IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
DNS_PORT = 53
ICMP_ECHO = 8
ICMP_ECHO_REPLY = 0
TCP_ACK = 0x10
ARP_HW_PROTO = 14     # hardware type 1 (Ethernet), protocol 0x0800
ARP_LENS = 14 + 4     # address lengths 6 and 4
ARP_OP = 14 + 6
ARP_SHA = 14 + 8
ARP_SPA = 14 + 14
ARP_TPA = 14 + 24
MIN_IP = 14 + 20
MIN_ARP = 14 + 28
MIN_ICMP = L4 + 8
MIN_TCP = L4 + 20
SKB_VLAN_PRESENT = 20  # offsetof(struct __sk_buff, vlan_present)

def _plain_to_host(a: ebpf.Program, min_len: int) -> None:
    """Checks for a packet the host itself receives: long enough for its L4
    header, no IP options, not a fragment; leaves its protocol in r0."""
    a.op(ebpf.MOV64_X, dst=0, src=7)
    a.jump(ebpf.JMP32_JLT_K, min_len, "drop")
    a.op(ebpf.LD_ABS_B, imm=IP_VHL)
    a.jump(ebpf.JMP32_JNE_K, 0x45, "drop")
    a.op(ebpf.LD_ABS_H, imm=IP_FRAG)
    a.jump(ebpf.JMP32_JSET_K, IP_MF_OFFSET, "drop")
    a.op(ebpf.LD_ABS_B, imm=IP_PROTO)


def _destinations(a: ebpf.Program, gw: int, meta: int | None,
                  metadata_port: int,
                  subnet: ipaddress.IPv4Network | None, dns: bool,
                  outside: bool = False, bridge: bool = False) -> None:
    """Where an IPv4 packet may go: the host only for ping, replies on
    host-opened TCP and (``dns``) UDP/TCP port 53 at the gateway and TCP
    to the metadata port (``meta`` None: the service is off), else the
    subnet (None: nowhere; on a ``bridge`` it is where the host must not
    listen), and with ``outside`` any other unicast address."""
    a.op(ebpf.LD_ABS_W, imm=IP_DADDR)
    # The host's own addresses first: they may not be left to the subnet
    # rule (the gateway is in the subnet; the metadata one could be).
    if meta is not None:
        a.jump(ebpf.JMP32_JEQ_K, meta, "metadata")
    a.jump(ebpf.JMP32_JEQ_K, gw, "gateway")
    if subnet is not None:
        a.op(ebpf.AND32_K, dst=0, imm=int(subnet.netmask))
        a.jump(ebpf.JMP32_JEQ_K, int(subnet.network_address),
               "drop" if bridge else "pass")
    if outside:  # not multicast nor limited broadcast (224/3)
        a.op(ebpf.LD_ABS_W, imm=IP_DADDR)
        a.jump(ebpf.JMP32_JLT_K, 0xE0000000, "pass")
    a.jump(ebpf.JA, 0, "drop")
    a.label("gateway")
    # ICMP echo and echo reply (ping either way); TCP only with ACK set:
    # segments of connections the host opened (its SYN went out, the
    # guest answers SYN-ACK, ACK…). A guest can't open one (no bare SYN),
    # and an unsolicited ACK only earns it a reset.
    _plain_to_host(a, MIN_ICMP)              # also a whole UDP header
    a.jump(ebpf.JMP32_JEQ_K, IPPROTO_TCP, "gateway_tcp")
    if dns:
        a.jump(ebpf.JMP32_JEQ_K, IPPROTO_UDP, "gateway_udp")
    a.jump(ebpf.JMP32_JNE_K, IPPROTO_ICMP, "drop")
    a.op(ebpf.LD_ABS_B, imm=L4)                  # ICMP type
    a.jump(ebpf.JMP32_JEQ_K, ICMP_ECHO, "pass")
    a.jump(ebpf.JMP32_JEQ_K, ICMP_ECHO_REPLY, "pass")
    a.jump(ebpf.JA, 0, "drop")
    a.label("gateway_tcp")
    a.op(ebpf.MOV64_X, dst=0, src=7)
    a.jump(ebpf.JMP32_JLT_K, MIN_TCP, "drop")
    if dns:  # the forwarder's TCP side: any segment to port 53
        a.op(ebpf.LD_ABS_H, imm=L4 + 2)          # TCP destination port
        a.jump(ebpf.JMP32_JEQ_K, DNS_PORT, "pass")
    a.op(ebpf.LD_ABS_B, imm=L4 + 13)             # TCP flags
    a.jump(ebpf.JMP32_JSET_K, TCP_ACK, "pass")
    a.jump(ebpf.JA, 0, "drop")
    if dns:
        a.label("gateway_udp")
        a.op(ebpf.LD_ABS_H, imm=L4 + 2)          # UDP destination port
        a.jump(ebpf.JMP32_JEQ_K, DNS_PORT, "pass")
        a.jump(ebpf.JA, 0, "drop")
    if meta is None:
        return
    a.label("metadata")
    _plain_to_host(a, MIN_TCP)
    a.jump(ebpf.JMP32_JNE_K, IPPROTO_TCP, "drop")
    a.op(ebpf.LD_ABS_H, imm=L4 + 2)              # TCP destination port
    a.jump(ebpf.JMP32_JEQ_K, metadata_port, "pass")
    a.jump(ebpf.JA, 0, "drop")


def _untagged(a: ebpf.Program) -> None:
    """The common start: r6 = ctx (LD_ABS wants it there), r7 = skb->len;
    any VLAN tag drops. The receiving device has already moved a tag
    written in the frame into skb->vlan_tci (a second one, QinQ, stays in
    the frame and fails the EtherType checks that follow)."""
    a.op(ebpf.MOV64_X, dst=6, src=1)
    a.op(ebpf.LDX_W, dst=7, src=6, off=0)        # r7 = skb->len
    a.op(ebpf.LDX_W, dst=0, src=6, off=SKB_VLAN_PRESENT)
    a.jump(ebpf.JMP32_JNE_K, 0, "drop")


def _ends(a: ebpf.Program) -> None:
    a.label("drop")
    a.op(ebpf.MOV64_K, dst=0, imm=TC_ACT_SHOT)
    a.op(ebpf.EXIT)
    a.label("pass")
    a.op(ebpf.MOV64_K, dst=0, imm=TC_ACT_OK)
    a.op(ebpf.EXIT)


def _metadata(metadata_address: str, metadata_port: int) -> int | None:
    """The metadata address as an int, or None when the service is off
    (port 0)."""
    if not 0 <= metadata_port < 65536:
        raise exception.NetworkError(
            reason=f"bad metadata port {metadata_port}")
    try:
        meta = int(ipaddress.IPv4Address(metadata_address))
    except ValueError as err:
        raise exception.NetworkError(
            reason=f"bad metadata address {metadata_address}: {err}"
        ) from err
    return meta if metadata_port else None


def bridge_program(gateway: str, metadata_address: str,
                   metadata_port: int, dns: bool = False,
                   outside: ipaddress.IPv4Network | None = None) -> bytes:
    """The filter on a bridge's own ingress: what the host's IP stack may
    receive from the network's guests (untagged ARP; ICMP echo/reply, TCP
    with ACK and, with ``dns``, UDP/TCP port 53 to the gateway; TCP to the
    metadata port unless that is 0). It sees only frames passed up to the
    host, so it removes the host's copy of a guest's subnet broadcast (UDP
    services bound to 0.0.0.0 would get it) and leaves the siblings'
    copies alone. With egress NAT on, ``outside`` is the bridge's subnet:
    packets to it stay off the host's stack as before, packets to any
    other unicast address go up to be routed.
    """
    gw = int(ipaddress.IPv4Address(gateway))
    meta = _metadata(metadata_address, metadata_port)
    a = ebpf.Program()
    _untagged(a)
    a.op(ebpf.MOV64_X, dst=0, src=7)
    a.jump(ebpf.JMP32_JLT_K, MIN_IP, "drop")     # also covers ARP's 14 bytes
    a.op(ebpf.LD_ABS_H, imm=ETH_TYPE)
    a.jump(ebpf.JMP32_JEQ_K, 0x0806, "pass")
    a.jump(ebpf.JMP32_JNE_K, 0x0800, "drop")
    _destinations(a, gw, meta, metadata_port, outside, dns,
                  outside=outside is not None, bridge=True)
    _ends(a)
    return a.assemble()


def program(mac: str, ip: str, prefixlen: int, gateway: str,
            metadata_address: str, metadata_port: int,
            dns: bool = False, outside: bool = False) -> bytes:
    """The filter's eBPF instructions for a port with this MAC and IP in
    the subnet ``ip/prefixlen`` whose gateway (the bridge) is ``gateway``;
    ``metadata_port`` 0 means no metadata service, ``dns`` that the
    gateway's DNS forwarder is on, ``outside`` that egress NAT is.

    Every packet load is preceded by a length check: an out-of-bounds
    LD_ABS ends the program with 0, which is TC_ACT_OK (pass).
    """
    raw = bytes(int(part, 16) for part in mac.split(":"))
    if len(raw) != 6:
        raise exception.NetworkError(reason=f"bad MAC {mac!r}")
    mac_hi, mac_lo = int.from_bytes(raw[:4], "big"), int.from_bytes(raw[4:],
                                                                    "big")
    meta = _metadata(metadata_address, metadata_port)
    try:
        subnet = ipaddress.IPv4Interface(f"{ip}/{prefixlen}").network
        addr = int(ipaddress.IPv4Address(ip))
        gw = int(ipaddress.IPv4Address(gateway))
    except ValueError as err:
        raise exception.NetworkError(
            reason=f"bad port addresses {ip}/{prefixlen} gw {gateway}: "
                   f"{err}") from err
    if prefixlen < 1 or ipaddress.IPv4Address(gw) not in subnet:
        # A /0 "subnet" would let the guest reach every host address.
        raise exception.NetworkError(
            reason=f"gateway {gateway} not in a subnet {subnet}")
    a = ebpf.Program()
    _untagged(a)
    a.op(ebpf.MOV64_X, dst=0, src=7)
    a.jump(ebpf.JMP32_JLT_K, 14, "drop")
    a.op(ebpf.LD_ABS_W, imm=ETH_SRC)
    a.jump(ebpf.JMP32_JNE_K, mac_hi, "drop")
    a.op(ebpf.LD_ABS_H, imm=ETH_SRC + 4)
    a.jump(ebpf.JMP32_JNE_K, mac_lo, "drop")
    a.op(ebpf.LD_ABS_H, imm=ETH_TYPE)
    a.jump(ebpf.JMP32_JEQ_K, 0x0800, "ipv4")
    a.jump(ebpf.JMP32_JEQ_K, 0x0806, "arp")
    a.jump(ebpf.JA, 0, "drop")
    a.label("ipv4")
    a.op(ebpf.MOV64_X, dst=0, src=7)
    a.jump(ebpf.JMP32_JLT_K, MIN_IP, "drop")
    a.op(ebpf.LD_ABS_W, imm=IP_SADDR)
    a.jump(ebpf.JMP32_JNE_K, addr, "drop")
    _destinations(a, gw, meta, metadata_port, subnet, dns, outside)
    a.label("arp")
    a.op(ebpf.MOV64_X, dst=0, src=7)
    a.jump(ebpf.JMP32_JLT_K, MIN_ARP, "drop")
    # Ethernet/IPv4 ARP only, so the fields below are where we read them.
    a.op(ebpf.LD_ABS_W, imm=ARP_HW_PROTO)
    a.jump(ebpf.JMP32_JNE_K, 0x00010800, "drop")
    a.op(ebpf.LD_ABS_H, imm=ARP_LENS)
    a.jump(ebpf.JMP32_JNE_K, 0x0604, "drop")
    a.op(ebpf.LD_ABS_H, imm=ARP_OP)
    a.op(ebpf.ADD32_K, dst=0, imm=-1)            # request 1, reply 2 → 0, 1
    a.jump(ebpf.JMP32_JGT_K, 1, "drop")
    a.op(ebpf.LD_ABS_W, imm=ARP_SHA)
    a.jump(ebpf.JMP32_JNE_K, mac_hi, "drop")
    a.op(ebpf.LD_ABS_H, imm=ARP_SHA + 4)
    a.jump(ebpf.JMP32_JNE_K, mac_lo, "drop")
    a.op(ebpf.LD_ABS_W, imm=ARP_SPA)
    a.jump(ebpf.JMP32_JEQ_K, addr, "arp_target")
    a.jump(ebpf.JMP32_JNE_K, 0, "drop")
    a.label("arp_target")
    # Whom the guest may ask about (or answer): its own subnet (siblings,
    # the gateway, itself in a probe or an announcement) and the metadata
    # address, never another host address.
    a.op(ebpf.LD_ABS_W, imm=ARP_TPA)
    if meta is not None:
        a.jump(ebpf.JMP32_JEQ_K, meta, "pass")
    a.op(ebpf.AND32_K, dst=0, imm=int(subnet.netmask))
    a.jump(ebpf.JMP32_JEQ_K, int(subnet.network_address), "pass")
    _ends(a)
    return a.assemble()


def install(host: netlink.HostNetlink, index: int, ifname: str, mac: str,
            ip: str, prefixlen: int, gateway: str, metadata_address: str,
            metadata_port: int, dns: bool = False,
            outside: bool = False) -> None:
    """Put the ingress qdisc and the filter on the host end ``index``."""
    code = program(mac, ip, prefixlen, gateway, metadata_address,
                   metadata_port, dns, outside)
    tcfilter.attach(host, index, ifname, code, "pyct_antispoof")


def install_bridge(host: netlink.HostNetlink, index: int, ifname: str,
                   gateway: str, metadata_address: str,
                   metadata_port: int, dns: bool = False,
                   refresh: bool = False,
                   outside: ipaddress.IPv4Network | None = None) -> None:
    """Put ``bridge_program`` on the bridge ``index``. A bpf filter that
    is there already is kept (ensure_bridge runs for every plug) unless
    ``refresh``: then it is replaced, since an earlier compute service may
    have installed it with another ``[metadata] port`` or DNS setting."""
    present = tcfilter.installed(host, index)
    if present and not refresh:
        return
    code = bridge_program(gateway, metadata_address, metadata_port, dns,
                          outside)
    tcfilter.attach(host, index, ifname, code, "pyct_bridge_in",
                    replace=present)
