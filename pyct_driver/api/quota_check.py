"""Quotas as the API applies them: effective limits, headroom, refusals.

A resource's limit is the first of: the user's own limit (when asked for a
user), the project's, the ``default`` quota class's, the ``[quota]``
option; ``driver = noop`` makes every limit -1. The resources and their
order are Nova's, the nova-network ones included (fixed_ips, floating_ips,
security_groups, security_group_rules: always -1 here, as in Nova, which
no longer counts them). ``instances_allowed`` is Nova's headroom rule for
a multi-create: as many as fit between ``min_count`` and ``max_count``,
or a 403 in Nova's words.
"""

from __future__ import annotations

from typing import Any, Callable

from pyct_driver import exception
from pyct_driver.api.state import Api
from pyct_driver.db import quotas as db_quotas

RESOURCES = ("cores", "fixed_ips", "floating_ips",
             "injected_file_content_bytes", "injected_file_path_bytes",
             "injected_files", "instances", "key_pairs", "metadata_items",
             "ram", "security_group_rules", "security_groups",
             "server_group_members", "server_groups")
# the [quota] option of each resource that has one (the others are -1)
OPTIONS = {"cores": "cores", "injected_file_content_bytes":
           "injected_file_content_bytes",
           "injected_file_path_bytes": "injected_file_path_length",
           "injected_files": "injected_files", "instances": "instances",
           "key_pairs": "key_pairs", "metadata_items": "metadata_items",
           "ram": "ram", "server_group_members": "server_group_members",
           "server_groups": "server_groups"}
# counted resources (in_use can be non-zero); the rest are absolute
COUNTED = ("instances", "cores", "ram", "key_pairs", "server_groups",
           "server_group_members")
INSTANCE_RESOURCES = ("instances", "cores", "ram")
# hidden from 2.36 and from 2.57 (quota sets; quota classes hide the
# first list from 2.50)
NETWORK_QUOTAS = ("fixed_ips", "floating_ips", "security_group_rules",
                  "security_groups")
FILE_QUOTAS = ("injected_files", "injected_file_content_bytes",
               "injected_file_path_bytes")


def defaults_from(conf_group: Any) -> dict[str, int]:
    """The configured defaults of every resource (the app factory's)."""
    return {r: (conf_group[OPTIONS[r]] if r in OPTIONS else -1)
            for r in RESOURCES}


def class_limits(api: Api, class_name: str = "default") -> dict[str, int]:
    if not api.settings.quota_enforced:
        return dict.fromkeys(RESOURCES, -1)
    limits = dict.fromkeys(RESOURCES, -1)
    limits.update(api.settings.quota_defaults)
    limits.update({k: v for k, v in db_quotas.class_get(
        api.db, class_name).items() if k in limits})
    return limits


def effective(api: Api, project_id: str,
              user_id: str | None = None) -> dict[str, int]:
    """The limits that apply to a project, or to one user of it."""
    if not api.settings.quota_enforced:
        return class_limits(api)
    return _resolved(api, db_quotas.own_limits(
        api.db, "default", project_id, user_id or ""), bool(user_id))


def _resolved(api: Api, own: tuple[dict, dict, dict],
              for_user: bool) -> dict[str, int]:
    """Effective limits from ``db_quotas.own_limits``' (class, project,
    user) rows: each level overrides the one before."""
    limits = dict.fromkeys(RESOURCES, -1)
    limits.update(api.settings.quota_defaults)
    for level in own if for_user else own[:2]:
        limits.update({k: v for k, v in level.items() if k in limits})
    return limits


def _room(limit: int, used: int) -> float:
    return float("inf") if limit < 0 else limit - used


def instances_allowed(limits: dict[str, int], used: dict[str, int],
                      vcpus: int, ram: int, min_count: int,
                      max_count: int) -> int:
    """How many of ``min_count``..``max_count`` servers of this flavor fit
    (the most that do); QuotaExceeded with Nova's message if fewer than
    ``min_count`` do."""
    each = {"instances": 1, "cores": vcpus, "ram": ram}
    allowed = max_count
    for res, size in each.items():
        if size:
            room = _room(limits[res], used[res])
            allowed = min(allowed, max(0, int(room // size))
                          if room != float("inf") else max_count)
    if allowed >= min_count:
        return allowed
    want = {r: max_count * size for r, size in each.items()}
    overs = sorted(r for r in each
                   if _room(limits[r], used[r]) < want[r])
    shown = str(min_count) if min_count == max_count else \
        f"{min_count}-{max_count}"
    reqs = [shown if r == "instances" else str(want[r]) for r in overs]
    names = ", ".join(overs)
    raise exception.QuotaExceeded(
        f"Quota exceeded for {names}: Requested {', '.join(reqs)}, but "
        f"already used {', '.join(str(used[r]) for r in overs)} of "
        f"{', '.join(str(limits[r]) for r in overs)} {names}")


def check_metadata(api: Api, project_id: str, user_id: str,
                   metadata: dict, allowed: int | None = None) -> None:
    """Nova's MetadataLimitExceeded (403) for too many metadata items;
    ``allowed``: the user's metadata_items limit, when already known."""
    if allowed is None:
        allowed = effective(api, project_id, user_id)["metadata_items"]
    if 0 <= allowed < len(metadata):
        raise exception.QuotaExceeded(
            f"Maximum number of metadata items exceeds {allowed}")


def check_keypair(limits: dict[str, int], used: dict[str, int]) -> None:
    if _room(limits["key_pairs"], used["key_pairs"]) < 1:
        raise exception.QuotaExceeded("Quota exceeded, too many key pairs.")


def user_has_instance_limits(api: Api, project_id: str,
                             user_id: str) -> bool:
    """Whether the user has own instance/core/RAM limits (then their own
    usage is checked too, as Nova does)."""
    if not api.settings.quota_enforced:
        return False
    own = db_quotas.project_get(api.db, project_id, user_id)
    return any(r in own for r in INSTANCE_RESOURCES)


class InstanceGuard:
    """The instance quota check of one server create: ``precheck`` (no
    lock, before anything is made, for an early 403) and ``__call__``, the
    ``guard`` of ``db.instances.create_many`` that holds the project's
    lock while it counts and answers how many servers may be inserted."""

    def __init__(self, api: Api, project_id: str, user_id: str,
                 flavor: dict, min_count: int, max_count: int) -> None:
        self.db = api.db
        self.enforced = api.settings.quota_enforced
        self.project_id = project_id
        self.user_id: str | None = None
        self.limits = dict.fromkeys(RESOURCES, -1)
        self.user_limits: dict[str, int] | None = None
        # the user's effective metadata_items, for check_metadata
        self.metadata_items = -1
        if self.enforced:
            # one read of the class, project and user rows
            own = db_quotas.own_limits(api.db, "default", project_id,
                                       user_id)
            self.limits = _resolved(api, own, False)
            self.metadata_items = _resolved(api, own, True)[
                "metadata_items"]
            if any(r in own[2] for r in INSTANCE_RESOURCES):
                self.user_id = user_id
                self.user_limits = _resolved(api, own, True)
        self.size = (int(flavor["vcpus"]), int(flavor["memory_mb"]))
        self.min_count, self.max_count = min_count, max_count
        self.scopes = [db_quotas.project_scope(project_id)]

    def _allowed(self, session: Any) -> int:
        if not self.enforced:
            return self.max_count
        allowed = instances_allowed(
            self.limits, db_quotas.instance_usage(session,
                                                  self.project_id),
            *self.size, self.min_count, self.max_count)
        if self.user_limits is not None:
            allowed = instances_allowed(
                self.user_limits, db_quotas.instance_usage(
                    session, self.project_id, self.user_id),
                *self.size, self.min_count, allowed)
        return allowed

    def precheck(self) -> int:
        with self.db.session() as session:
            return self._allowed(session)

    def __call__(self, session: Any) -> int:
        if self.enforced:
            db_quotas.lock(session, self.scopes)
        return self._allowed(session)

    def prepare(self) -> None:
        """Make the lock row (outside the create's transaction)."""
        if self.enforced:
            db_quotas.ensure_locks(self.db, self.scopes)


def keypair_guard(api: Api, project_id: str, user_id: str
                  ) -> Callable[[Any], None] | None:
    """The ``guard`` of ``db.keypairs.create``: the user's key pairs stay
    within the key_pairs limit (counted per user, as in Nova)."""
    if not api.settings.quota_enforced:
        return None
    limits = effective(api, project_id, user_id)
    scopes = [db_quotas.user_scope(user_id)]
    db_quotas.ensure_locks(api.db, scopes)

    def guard(session: Any) -> None:
        db_quotas.lock(session, scopes)
        check_keypair(limits, {"key_pairs": db_quotas.keypair_count(
            session, user_id)})
    return guard
