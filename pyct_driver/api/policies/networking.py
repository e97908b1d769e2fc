"""Default rules of the network API subset (Neutron's rule names).

pyct's ``/networking`` answers reads, and security-group writes; a project's readers read its
networks, subnets and ports, admins everyone's. Targets are the item's
project (the caller's for a list). An item a rule refuses is a 404, as
Neutron hides what a caller may not read.
"""

from __future__ import annotations

from pyct_driver.api.policies.base import (PROJECT_MEMBER_OR_ADMIN,
                                           PROJECT_READER_OR_ADMIN)

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
]
