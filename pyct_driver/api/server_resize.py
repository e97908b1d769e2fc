"""Server actions ``resize``, ``confirmResize`` and ``revertResize``.

A resize stays on the server's own host when that host has room for the
growth, and moves to the scheduler's pick among the others when it has not
(``server_migrate.begin``, a cross-host move). The API checks what Nova
checks before anything moves (a different flavor the caller may use, not a
root of zero GiB, fitting the image's minimums, the project's cores/RAM
quota for the growth), swaps the task state to ``resize_prep`` with a
compare-and-swap (a wrong state or a lost race is a 409
``conflictingRequest``), records the instance action, the migration and
both flavor snapshots, and casts to the host. When no host has room for
the growth the resize fails as Nova's scheduler makes it fail: the request
is accepted, the server stays as it was, with a ``NoValidHost`` fault and
an error event on the action. Confirm and revert are compare-and-swaps on
the open resize (``db.resizes``)."""

from __future__ import annotations

from pyct_driver import exception, states
from pyct_driver.api import quota_check, schemas, server_lock, \
    server_migrate
from pyct_driver.api.flavors import caller_project
from pyct_driver.api.request import ApiRequest, Result
from pyct_driver.api.scheduler import no_valid_host
from pyct_driver.api.server_create import FLAVOR_KEYS, check_fits_image
from pyct_driver.api.servers import get_instance
from pyct_driver.api.state import Api
from pyct_driver.db import actions as db_actions
from pyct_driver.db import catalog
from pyct_driver.db import instances as db_instances
from pyct_driver.db import quotas as db_quotas
from pyct_driver.db import resizes as db_resizes

_P = "os_compute_api:servers:"
RESIZE = schemas._obj({"resize": schemas._obj({
    "flavorRef": {"type": ["string", "integer"], "minLength": 1},
    "OS-DCF:diskConfig": {"type": "string", "enum": ["AUTO", "MANUAL"]}},
    ("flavorRef",))}, ("resize",))


def _new_flavor(api: Api, req: ApiRequest, ref: str | int) -> dict:
    flavor_id = str(ref).rstrip("/").rsplit("/", 1)[-1]
    try:
        # a private flavor the project was not given does not exist for it
        flavor = catalog.flavor_get(api.db, flavor_id, caller_project(req))
    except exception.FlavorNotFound as err:
        raise exception.Invalid(err.message) from err
    if flavor["disabled"]:
        raise exception.Invalid(
            f"Flavor {flavor_id} could not be found.")
    return flavor


def _check_image(api: Api, inst: dict, flavor: dict) -> None:
    try:
        image = catalog.image_get(api.db, inst["image_ref"])
    except exception.ImageNotFound as err:
        raise exception.Invalid("Image that the instance was started with "
                                "could not be found.") from err
    check_fits_image(flavor, image)


def check_quota(api: Api, inst: dict, old: dict, new: dict) -> None:
    """Nova's upsize check: the growth in cores and RAM must fit the
    project's (and, with own limits, the user's) quota; 403 if not."""
    want = {"cores": int(new["vcpus"]) - int(old["vcpus"]),
            "ram": int(new["memory_mb"]) - int(old["memory_mb"])}
    want = {k: v for k, v in want.items() if v > 0}
    if not want or not api.settings.quota_enforced:
        return
    users = [None]
    if quota_check.user_has_instance_limits(api, inst["project_id"],
                                            inst["user_id"]):
        users.append(inst["user_id"])
    for user in users:
        limits = quota_check.effective(api, inst["project_id"], user)
        used = db_quotas.usage_of(api.db, inst["project_id"], user)
        overs = sorted(r for r, n in want.items()
                       if 0 <= limits[r] < used[r] + n)
        if overs:
            names = ", ".join(overs)
            raise exception.QuotaExceeded(
                f"Quota exceeded for {names}: Requested "
                f"{', '.join(str(want[r]) for r in overs)}, but already "
                f"used {', '.join(str(used[r]) for r in overs)} of "
                f"{', '.join(str(limits[r]) for r in overs)} {names}")


def _fits(api: Api, host: str, old: dict, new: dict) -> bool:
    """Whether the host has room for the growth (the guest's old limits
    are replaced in place, not held beside the new ones)."""
    room = api.scheduler.host_room(host)
    if room is None:
        return False
    need = {"vcpus": new["vcpus"] - old["vcpus"],
            "memory_mb": new["memory_mb"] - old["memory_mb"],
            "local_gb": (new["root_gb"] + new["ephemeral_gb"])
            - (old["root_gb"] + old.get("ephemeral_gb", 0))}
    return all(room[k] >= n for k, n in need.items() if n > 0)


def _type_id(api: Api, flavorid: str) -> int | None:
    try:
        return int(catalog.flavor_get(api.db, flavorid)["id"])
    except exception.FlavorNotFound:
        return None


def resize(api: Api, req: ApiRequest, server_id: str, body: dict
           ) -> Result:
    schemas.validate(RESIZE, body)
    inst = get_instance(api, req, server_id, _P + "resize")
    server_lock.check(req, inst)
    flavor = _new_flavor(api, req, body["resize"]["flavorRef"])
    old = inst["flavor"]
    if flavor["flavorid"] == inst["flavor_id"]:
        raise exception.Invalid("When resizing, instances must change "
                                "flavor!")
    if flavor["root_gb"] == 0 and old.get("root_gb"):
        raise exception.Invalid("Server disk was unable to be resized "
                                "because: Resize to zero disk flavor is "
                                "not allowed.")
    _check_image(api, inst, flavor)
    check_quota(api, inst, old, flavor)
    ctxt = req.context
    snapshot = {k: flavor[k] for k in FLAVOR_KEYS}
    if not _fits(api, inst["host"], old, snapshot):
        dest = api.scheduler.select_hosts(snapshot, 1,
                                          exclude=inst["host"])[0]
        if dest is not None:  # another host has room: move there
            server_migrate.begin(api, ctxt, inst, dest, "resize", snapshot,
                                 flavor["flavorid"])
            return Result(202)
    inst = db_instances.update(
        api.db, inst["uuid"], {"task_state": states.RESIZE_PREP},
        expected_task_state=(None,),
        expected_vm_state=(states.ACTIVE, states.STOPPED), action="resize")
    db_actions.action_start(api.db, inst["uuid"], "resize",
                            ctxt.request_id, ctxt.user_id, ctxt.project_id)
    change = db_resizes.start(api.db, inst, flavor["flavorid"], snapshot,
                              _type_id(api, inst["flavor_id"]),
                              int(flavor["id"]))
    if not _fits(api, inst["host"], old, snapshot):
        _no_room(api, req, inst, change)
        return Result(202)
    api.compute.resize_instance(ctxt, inst["host"], inst["uuid"],
                                change["migration_uuid"])
    return Result(202)


def _no_room(api: Api, req: ApiRequest, inst: dict, change: dict) -> None:
    """Fail the resize as Nova's conductor does when scheduling finds no
    host: fault, error event, migration ``error``, state as before."""
    err = no_valid_host()
    rid = req.context.request_id
    db_actions.event_start(api.db, inst["uuid"], rid,
                           "conductor_migrate_server", None)
    db_actions.event_finish(api.db, inst["uuid"], rid,
                            "conductor_migrate_server", "Error",
                            err.message)
    db_actions.fault_create(api.db, inst["uuid"], 500, err.message,
                            err.message, None)
    db_resizes.set_status(api.db, change["migration_uuid"], "error")
    db_instances.update(api.db, inst["uuid"], {"task_state": None},
                        expected_task_state=states.RESIZE_PREP)


def _resized(api: Api, req: ApiRequest, server_id: str, rule: str,
             name: str) -> dict:
    inst = get_instance(api, req, server_id, _P + rule)
    server_lock.check(req, inst)
    if inst["vm_state"] != states.RESIZED or inst["task_state"]:
        raise exception.InstanceInvalidState(
            action=name, instance_id=inst["uuid"],
            attr="task_state" if inst["task_state"] else "vm_state",
            state=inst["task_state"] or inst["vm_state"])
    return inst


def _claim(api: Api, inst: dict, before: str, after: str) -> dict:
    try:
        return db_resizes.claim(api.db, inst["uuid"], before, after)
    except exception.InstanceNotFound:
        raise
    except exception.NotFound as err:
        raise exception.Invalid("Instance has not been resized.") from err


def confirm(api: Api, req: ApiRequest, server_id: str, body: dict
            ) -> Result:
    schemas.validate(schemas.empty_action("confirmResize"), body)
    inst = _resized(api, req, server_id, "confirm_resize", "confirmResize")
    change = _claim(api, inst, "finished", "confirming")
    ctxt = req.context
    db_actions.action_start(api.db, inst["uuid"], "confirmResize",
                            ctxt.request_id, ctxt.user_id, ctxt.project_id)
    api.compute.confirm_resize(ctxt, inst["host"], inst["uuid"],
                               change["migration_uuid"])
    return Result(204)


def revert(api: Api, req: ApiRequest, server_id: str, body: dict
           ) -> Result:
    schemas.validate(schemas.empty_action("revertResize"), body)
    inst = _resized(api, req, server_id, "revert_resize", "revertResize")
    try:
        change = db_resizes.current(api.db, inst["uuid"])
    except exception.NotFound as err:
        raise exception.Invalid("Instance has not been resized.") from err
    check_quota(api, inst, change["new_flavor"], change["old_flavor"])
    inst = db_instances.update(
        api.db, inst["uuid"], {"task_state": states.RESIZE_REVERTING},
        expected_task_state=(None,), expected_vm_state=states.RESIZED,
        action="revertResize")
    try:
        change = _claim(api, inst, "finished", "reverting")
    except exception.PyctError:
        # a confirm won the race: leave the server as that confirm has it
        db_instances.update(api.db, inst["uuid"], {"task_state": None},
                            expected_task_state=states.RESIZE_REVERTING)
        raise
    ctxt = req.context
    db_actions.action_start(api.db, inst["uuid"], "revertResize",
                            ctxt.request_id, ctxt.user_id, ctxt.project_id)
    api.compute.revert_resize(ctxt, inst["host"], inst["uuid"],
                              change["migration_uuid"])
    return Result(202)
