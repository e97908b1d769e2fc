"""Role inference, as Keystone's implied roles: admin ⇒ member ⇒ reader.

Keystone's bootstrap makes ``admin`` imply ``member`` and ``member`` imply
``reader``, and puts the implied roles in every token, so policy rules ask
for the least role an action needs (``role:reader`` to read) and higher
roles pass. The noauth strategy has no Keystone to do that and infers the
same set here, for the roles it gives each user.
"""

from __future__ import annotations

from typing import Iterable

IMPLIES = {"admin": ("member",), "member": ("reader",)}
READER = "reader"


def implied(roles: Iterable[str]) -> list[str]:
    """``roles`` and every role they imply, in first-seen order."""
    out: list[str] = []
    todo = list(roles)
    while todo:
        role = todo.pop(0)
        if role not in out:
            out.append(role)
            todo.extend(IMPLIES.get(role, ()))
    return out


def noauth_roles(user: str, roles: Iterable[str], admin_users: set[str],
                 reader_users: set[str]) -> list[str]:
    """The roles the noauth strategy gives ``user``: only ``reader`` for a
    reader user (least privilege wins if also listed as an admin), the
    configured roles plus ``admin`` for an admin user, else the configured
    roles; always with the roles they imply."""
    if user in reader_users:
        return [READER]
    given = list(roles) + (["admin"] if user in admin_users else [])
    return implied(given)
