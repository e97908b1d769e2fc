"""Neutron's ``security-group-rules`` body checks and view.

A rule is refused with Neutron's own fault types and words: an unknown
direction, ethertype or protocol, ports on a protocol without ports, a
``port_range_min`` above ``port_range_max``, a malformed or mismatched
CIDR, both a remote prefix and a remote group. Protocols are tcp, udp,
icmp or any (none); their IANA numbers are accepted as Neutron accepts
them and stored as names.
"""

from __future__ import annotations

import ipaddress

from pyct_driver import exception

PROTOCOLS = {"tcp": "tcp", "6": "tcp", "udp": "udp", "17": "udp",
             "icmp": "icmp", "1": "icmp", "any": None}
_WRITABLE = {"security_group_id", "direction", "ethertype", "protocol",
             "port_range_min", "port_range_max", "remote_ip_prefix",
             "remote_group_id", "description", "tenant_id", "project_id",
             "remote_address_group_id"}


def _bad(kind: str, reason: str) -> exception.SecurityGroupRuleInvalid:
    return exception.SecurityGroupRuleInvalid(kind, reason)


def _port(body: dict, key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError) as err:
        raise _bad("InvalidInput", f"Invalid input for {key}. Reason: "
                   f"'{value}' is not an integer.") from err
    if not 0 <= number <= 65535:
        raise _bad("InvalidInput", f"Invalid input for {key}. Reason: "
                   f"'{value}' is not in range 0 through 65535.")
    return number


def _protocol(value) -> str | None:
    if value is None:
        return None
    key = str(value).lower()
    if key not in PROTOCOLS:
        raise _bad("SecurityGroupRuleInvalidProtocol",
                   f"Security group rule protocol {value} not supported. "
                   "Only protocol values ['tcp', 'udp', 'icmp', 'any'] "
                   "and integer representations [1, 6, 17] are supported.")
    return PROTOCOLS[key]


def _ports(proto: str | None, low: int | None, high: int | None) -> None:
    if proto in ("tcp", "udp"):
        if low is not None and high is not None and low > high:
            raise _bad("SecurityGroupInvalidPortRange",
                       "For TCP/UDP protocols, port_range_min must be <= "
                       "port_range_max")
        if (low == 0 or high == 0):
            raise _bad("SecurityGroupInvalidPortValue",
                       "Invalid value for port 0")
    elif proto == "icmp":
        if (low is not None and low > 255) or (high is not None
                                               and high > 255):
            raise _bad("SecurityGroupInvalidIcmpValue",
                       "Invalid value for ICMP type or code: it must be "
                       "0 through 255")
        if high is not None and low is None:
            raise _bad("SecurityGroupMissingIcmpType",
                       "ICMP code (port-range-max) is provided but ICMP "
                       "type (port-range-min) is missing.")
    elif low is not None or high is not None:
        raise _bad("SecurityGroupProtocolRequiredWithPorts",
                   "Must also specify protocol if port range is given.")


def _prefix(value, ethertype: str) -> str | None:
    if value is None:
        return None
    try:
        net = ipaddress.ip_network(str(value), strict=False)
    except ValueError as err:
        raise _bad("InvalidInput", "Invalid input for remote_ip_prefix. "
                   f"Reason: '{value}' is not a valid IP subnet.") from err
    if f"IPv{net.version}" != ethertype:
        raise _bad("SecurityGroupRuleParameterConflict",
                   f"Conflicting value ethertype {ethertype} for CIDR "
                   f"{value}")
    return str(net)


def checked(body: dict) -> dict:
    """The rule's stored fields from a create body (400 if malformed)."""
    unknown = set(body) - _WRITABLE
    if unknown:
        raise _bad("HTTPBadRequest", f"Unrecognized attribute(s) "
                   f"'{', '.join(sorted(unknown))}'")
    direction = body.get("direction")
    if direction not in ("ingress", "egress"):
        raise _bad("InvalidInput", "Invalid input for direction. Reason: "
                   f"'{direction}' is not in ['ingress', 'egress'].")
    ethertype = body.get("ethertype") or "IPv4"
    if ethertype not in ("IPv4", "IPv6"):
        raise _bad("InvalidInput", "Invalid input for ethertype. Reason: "
                   f"'{ethertype}' is not in ['IPv4', 'IPv6'].")
    proto = _protocol(body.get("protocol"))
    low = _port(body, "port_range_min")
    high = _port(body, "port_range_max")
    _ports(proto, low, high)
    if proto in ("tcp", "udp") and low is not None and high is None:
        high = low
    prefix = _prefix(body.get("remote_ip_prefix"), ethertype)
    if prefix is not None and body.get("remote_group_id"):
        raise _bad("SecurityGroupRemoteGroupAndRemoteIpPrefix",
                   "Only remote_ip_prefix or remote_group_id may be "
                   "provided.")
    if prefix in ("0.0.0.0/0", "::/0"):
        prefix = None  # Neutron stores "any" as no prefix
    return {"direction": direction, "ethertype": ethertype,
            "protocol": proto, "port_range_min": low,
            "port_range_max": high, "remote_ip_prefix": prefix,
            "remote_group_id": body.get("remote_group_id"),
            "description": body.get("description") or ""}


def view(rule: dict) -> dict:
    stamp = rule["created_at"].strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "id": rule["id"], "security_group_id": rule["security_group_id"],
        "tenant_id": rule["project_id"], "project_id": rule["project_id"],
        "direction": rule["direction"], "ethertype": rule["ethertype"],
        "protocol": rule["protocol"],
        "port_range_min": rule["port_range_min"],
        "port_range_max": rule["port_range_max"],
        "remote_ip_prefix": rule["remote_ip_prefix"],
        "remote_group_id": rule["remote_group_id"],
        "remote_address_group_id": None, "normalized_cidr":
        rule["remote_ip_prefix"], "description": rule["description"],
        "belongs_to_default_sg": None,
        "created_at": stamp, "updated_at": stamp, "revision_number": 0}
