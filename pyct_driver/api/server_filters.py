"""What a ``GET /servers[/detail]`` query string asks, checked as Nova does.

Nova's rules, per microversion: a caller without
``os_compute_api:servers:allow_all_filters`` may use only the filters
Nova grants non-admins at that version (``_PUBLIC``; anything else is
dropped, as Nova drops it); from 2.75 a parameter Nova does not know is a
400. Regex filters must compile, ``changes-since``/``changes-before``
must be ISO 8601 times, ``status`` must be a status (2.38), ``sort_key``
one of Nova's keys for the version (the ones Nova ignores are dropped with
their direction), ``locked`` a strict boolean. The result is a
``db.instance_list.Query``.
"""

from __future__ import annotations

import datetime

from oslo_utils import strutils

from pyct_driver import exception, states
from pyct_driver.api.request import (ApiRequest, parse_int,
                                     reject_unknown_params)
from pyct_driver.api.state import Api
from pyct_driver.db import catalog, instance_list, regex_filter
from pyct_driver.db.instance_list import Query

_P = "os_compute_api:servers:"
TAG_FILTERS = ("tags", "tags-any", "not-tags", "not-tags-any")
# non-admin filters and the microversion that grants each
_PUBLIC: list[tuple[tuple[int, int], tuple[str, ...]]] = [
    ((2, 1), ("reservation_id", "name", "status", "image", "flavor", "ip",
              "changes-since", "all_tenants")),
    ((2, 5), ("ip6",)),
    ((2, 26), TAG_FILTERS),
    ((2, 66), ("changes-before",)),
    ((2, 73), ("locked",)),
    ((2, 83), ("availability_zone", "config_drive", "key_name",
               "created_at", "launched_at", "terminated_at", "power_state",
               "task_state", "vm_state", "progress", "user_id")),
    ((2, 90), ("hostname",)),
]
_EXACT = ("user_id", "project_id", "tenant_id", "image_ref",
          "image", "vm_state", "task_state", "host", "uuid", "sort_dir",
          "all_tenants", "soft_deleted", "deleted", "status", "limit",
          "marker")
_REGEX = ("launch_index", "kernel_id", "ramdisk_id", "hostname",
          "key_name", "power_state", "node", "flavor", "reservation_id",
          "launched_at", "terminated_at",
          "availability_zone", "name", "display_name", "description",
          "display_description", "locked_by", "root_device_name",
          "config_drive", "access_ip_v4", "access_ip_v6",
          "auto_disk_config", "progress", "ip", "ip6", "created_at")
# filters on tables Nova joins; an admin naming one gets a 400
_JOINED = ("block_device_mapping", "services", "metadata",
           "system_metadata", "info_cache", "security_groups",
           "pci_devices")
_PAGING = ("limit", "marker", "sort_key", "sort_dir")
# sort keys Nova accepts but ignores (until 2.75, which refuses them)
IGNORED_SORT_KEYS = (
    "architecture", "cell_name", "cleaned", "default_ephemeral_device",
    "default_swap_device", "deleted", "deleted_at", "disable_terminate",
    "ephemeral_gb", "ephemeral_key_uuid", "id", "key_data", "launched_on",
    "locked", "memory_mb", "os_type", "reservation_id", "root_gb",
    "shutdown_terminate", "user_data", "vcpus", "vm_mode")
_SORT_KEYS = tuple(k for k in instance_list.SORT_COLUMNS
                   if k not in ("id", "locked"))
# regex filter -> instance_list.REGEX_FIELDS key
_REGEX_ALIASES = {"name": "display_name", "description":
                  "display_description"}


def known(version: tuple[int, int]) -> set[str]:
    names = set(_EXACT + _REGEX + _JOINED + _PAGING) | {"changes-since"}
    if version >= (2, 26):
        names.update(TAG_FILTERS)
    if version >= (2, 66):
        names.add("changes-before")
    if version >= (2, 73):
        names.add("locked")
    return names


def public(version: tuple[int, int]) -> set[str]:
    out: set[str] = set()
    for since, names in _PUBLIC:
        if version >= since:
            out.update(names)
    return out


def _schema_error(name: str, value: str, message: str) -> exception.Invalid:
    return exception.Invalid(f"Invalid input for query parameters {name}. "
                             f"Value: {value}. {message}")


def _regex(name: str, values: list[str]) -> str:
    for value in values:
        try:
            regex_filter.compile_filter(value)
        except exception.InvalidInput as err:
            raise _schema_error(name, value, err.kwargs["reason"]) from err
    return values[-1]


def _time(name: str, values: list[str]) -> datetime.datetime:
    for value in values:
        try:
            parsed = datetime.datetime.fromisoformat(
                value.replace("Z", "+00:00"))
        except ValueError as err:
            raise _schema_error(name, value,
                                f"'{value}' is not a 'date-time'") from err
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(datetime.timezone.utc).replace(
            tzinfo=None)
    return parsed


def changes_window(req: ApiRequest) -> dict:
    """``changes-since`` (and from 2.66 ``changes-before``) of a list that
    pages by time, checked as the server list checks them."""
    out = {}
    names = ["changes-since"] + (["changes-before"]
                                 if req.at_least("2.66") else [])
    for name in names:
        values = req.params.getall(name)
        if values:
            out[name.replace("-", "_")] = _time(name, values)
    if out.get("changes_since") and out.get("changes_before") and \
            out["changes_before"] < out["changes_since"]:
        raise exception.Invalid("The value of changes-since must be less "
                                "than or equal to changes-before.")
    return out


def _bool(value: str, strict: bool) -> bool:
    try:
        return strutils.bool_from_string(value, strict=strict)
    except ValueError as err:
        raise exception.InvalidInput(reason=str(err)) from err


def _sort(req: ApiRequest, admin: bool) -> list[tuple[str, str]]:
    keys = [k.strip() for k in req.params.getall("sort_key")]
    dirs = [d.strip() for d in req.params.getall("sort_dir")]
    valid = set(_SORT_KEYS)
    ignored = set(IGNORED_SORT_KEYS)
    if req.at_least("2.73"):
        valid.add("locked")
        ignored.discard("locked")
    if not req.at_least("2.75"):
        valid |= ignored
    for key in keys:
        if key not in valid:
            raise _schema_error("sort_key", key,
                                f"'{key}' is not one of {sorted(valid)}")
    keys = keys or ["created_at"]
    dirs = dirs or ["desc"]
    for direction in dirs:
        if direction not in ("asc", "desc"):
            raise exception.InvalidInput(
                reason="Unknown sort direction, must be 'desc' or 'asc'")
    if len(dirs) > len(keys):
        raise exception.InvalidInput(
            reason="Sort direction size exceeds sort key size")
    dirs += [dirs[0]] * (len(keys) - len(dirs))
    pairs = []
    for key, direction in zip(keys, dirs):
        if key in ignored:
            continue
        if key in ("host", "node") and not admin:
            raise exception.Forbidden(
                f"Only administrators can sort servers by {key}")
        pairs.append((key, direction))
    for key in ("created_at", "id"):
        if key not in keys:
            pairs.append((key, dirs[0]))
    return pairs


def _statuses(req: ApiRequest, q: Query, admin: bool) -> bool:
    """Fill the status filter; False when it can match nothing (before
    2.38 an unknown status is an empty list, from 2.38 a 400)."""
    wanted = req.params.getall("status")
    if not wanted:
        return True
    known_statuses = [s for s in wanted if states.vm_states_for_status(s)]
    if not known_statuses:
        if req.at_least("2.38"):
            raise exception.Invalid("Invalid status value")
        return False
    q.statuses = wanted
    if [s.upper() for s in wanted] == ["DELETED"]:
        if not admin:
            raise exception.Forbidden(
                "Only administrators may list deleted instances")
        q.deleted = True
    return True


def _all_tenants(req: ApiRequest, opts: dict[str, list[str]]) -> bool:
    if "all_tenants" not in opts:
        return False
    value = opts["all_tenants"][-1]
    return _bool(value, strict=True) if value else True


def parse(api: Api, req: ApiRequest, is_detail: bool) -> Query | None:
    """The list query, or None when Nova answers an empty list."""
    admin = api.policy.check(req.context, _P + "allow_all_filters")
    opts = {k: req.params.getall(k) for k in req.params.keys()}
    if req.at_least("2.75"):
        # "_..." names pass Nova's schema, to be refused below
        reject_unknown_params((k for k in opts if not k.startswith("_")),
                              known(req.version))
    if not admin:
        allowed = public(req.version)
        opts = {k: v for k, v in opts.items() if k in allowed}
    for name in opts:
        if name in _JOINED or name.startswith("_"):
            raise exception.Invalid(f"Invalid filter field: {name}.")
    q = Query()
    if not _statuses(req, q, admin):
        return None
    for name in _REGEX:
        if name not in opts:
            continue
        value = _regex(name, opts[name])
        if name in ("ip", "ip6"):
            setattr(q, name, value)
        elif name != "flavor":          # an exact match, below
            q.regex[_REGEX_ALIASES.get(name, name)] = value
    if "changes-since" in opts or "changes-before" in opts:
        window = changes_window(req)
        q.changes_since = window.get("changes_since")
        q.changes_before = window.get("changes_before")
    if "deleted" in opts:
        q.deleted = _bool(opts["deleted"][-1], strict=False)
    elif q.changes_since or q.changes_before:
        q.deleted = None
    if "soft_deleted" in opts:
        q.soft_deleted = bool(opts["soft_deleted"][-1])
    for name in ("image", "image_ref"):
        if name in opts:
            q.exact["image_ref"] = opts[name][-1]
    for name in ("vm_state", "task_state", "host", "uuid", "user_id"):
        if name in opts:
            q.exact[name] = opts[name][-1]
    if "locked" in opts:
        q.exact["locked"] = _bool(opts["locked"][-1], strict=True)
    for name in TAG_FILTERS:
        if name in opts:
            q.tags[name] = opts[name][-1].split(",")
    all_tenants = _all_tenants(req, opts)
    if all_tenants:
        api.policy.authorize(req.context, _P + (
            "detail" if is_detail else "index") + ":get_all_tenants")
        for name in ("tenant_id", "project_id"):
            if name in opts:
                q.exact["project_id"] = opts[name][-1]
        q.marker_project = None
    else:
        q.exact["project_id"] = req.context.project_id
        q.marker_project = req.context.project_id
    q.limit = parse_int(req.param("limit"), "limit")
    q.limit = min(q.limit, api.settings.max_limit) \
        if q.limit is not None else api.settings.max_limit
    q.marker = req.param("marker")
    q.sort = _sort(req, admin)
    if "flavor" in opts and not _flavor(api, q, opts["flavor"][-1]):
        return None
    return q


def _flavor(api: Api, q: Query, flavorid: str) -> bool:
    """Nova looks the flavor up first: an unknown one matches nothing."""
    try:
        catalog.flavor_get(api.db, flavorid)
    except exception.FlavorNotFound:
        return False
    q.exact["flavor_id"] = flavorid
    return True
