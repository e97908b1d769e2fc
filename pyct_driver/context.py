"""The request context: who is asking, on whose behalf, under which id.

A thin subclass of oslo.context's ``RequestContext`` so logs and RPC carry
the request id, user and project the way every OpenStack service does. It
crosses RPC as a plain dict (``to_dict``/``from_dict``).
"""

from __future__ import annotations

from typing import Any

from oslo_context import context as oslo_context


class RequestContext(oslo_context.RequestContext):
    """Security context of one API request or one internal task."""

    def __init__(self, user_id: str | None = None,
                 project_id: str | None = None,
                 roles: list[str] | None = None,
                 is_admin: bool | None = None, **kwargs: Any) -> None:
        roles = list(roles or [])
        if is_admin is None:
            is_admin = "admin" in roles
        super().__init__(user_id=user_id, project_id=project_id, roles=roles,
                         is_admin=is_admin, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        values = super().to_dict()
        values["roles"] = list(self.roles)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any], **kwargs: Any
                  ) -> "RequestContext":
        return cls(user_id=values.get("user"),
                   project_id=values.get("project_id") or values.get(
                       "project"),
                   roles=values.get("roles", []),
                   is_admin=values.get("is_admin"),
                   request_id=values.get("request_id"),
                   global_request_id=values.get("global_request_id"))


def get_admin_context() -> RequestContext:
    """A context for the service's own periodic and recovery work."""
    return RequestContext(user_id=None, project_id=None, roles=["admin"],
                          is_admin=True, overwrite=False)
