"""Default rules of the network API subset (Neutron's rule names).

pyct's ``/networking`` answers reads, and security-group writes (Nova's
``os-security-groups`` rules are here too); a project's readers read its
networks, subnets, ports and floating IPs, admins everyone's; a
project's members hold, associate and release its floating IPs (Neutron's
defaults), and associate them through Nova's
``addFloatingIp``/``removeFloatingIp`` (Nova's rules). Targets are the item's
project (the caller's for a list). An item a rule refuses is a 404, as
Neutron hides what a caller may not read.
"""

from __future__ import annotations

from pyct_driver.api.policies.base import (PROJECT_MEMBER_OR_ADMIN,
                                           PROJECT_READER_OR_ADMIN)

_NOVA = "os_compute_api:os-security-groups:"
_NOVA_FIP = "os_compute_api:os-floating-ips:"

RULES: list[tuple[str, str, str]] = [
    ("get_network", PROJECT_READER_OR_ADMIN, "List or show networks."),
    ("get_subnet", PROJECT_READER_OR_ADMIN, "List or show subnets."),
    ("get_port", PROJECT_READER_OR_ADMIN, "List or show ports."),
    ("get_security_group", PROJECT_READER_OR_ADMIN,
     "List or show security groups and their rules."),
    ("create_security_group", PROJECT_MEMBER_OR_ADMIN,
     "Create a security group."),
    ("update_security_group", PROJECT_MEMBER_OR_ADMIN,
     "Rename or describe a security group."),
    ("delete_security_group", PROJECT_MEMBER_OR_ADMIN,
     "Delete a security group."),
    ("create_security_group_rule", PROJECT_MEMBER_OR_ADMIN,
     "Add a rule to a security group."),
    ("delete_security_group_rule", PROJECT_MEMBER_OR_ADMIN,
     "Remove a rule from a security group."),
    # Nova's names for its view of the same groups
    (_NOVA + "get", PROJECT_READER_OR_ADMIN,
     "List the project's security groups (os-security-groups, < 2.36)."),
    (_NOVA + "show", PROJECT_READER_OR_ADMIN,
     "Show a security group (os-security-groups, < 2.36)."),
    (_NOVA + "list", PROJECT_READER_OR_ADMIN,
     "List a server's security groups."),
    (_NOVA + "add", PROJECT_MEMBER_OR_ADMIN,
     "Add a security group to a server (addSecurityGroup)."),
    (_NOVA + "remove", PROJECT_MEMBER_OR_ADMIN,
     "Remove a security group from a server (removeSecurityGroup)."),
    ("get_floatingip", PROJECT_READER_OR_ADMIN,
     "List or show floating IPs."),
    ("create_floatingip", PROJECT_MEMBER_OR_ADMIN,
     "Hold a floating IP of the external network."),
    ("update_floatingip", PROJECT_MEMBER_OR_ADMIN,
     "Associate a floating IP with a port, or disassociate it."),
    ("delete_floatingip", PROJECT_MEMBER_OR_ADMIN,
     "Release a floating IP."),
    (_NOVA_FIP + "add", PROJECT_MEMBER_OR_ADMIN,
     "Associate a floating IP with a server (addFloatingIp)."),
    (_NOVA_FIP + "remove", PROJECT_MEMBER_OR_ADMIN,
     "Disassociate a floating IP from a server (removeFloatingIp)."),
]
