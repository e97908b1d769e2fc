"""Stuck work: the queries of the API's build and action timeouts.

``find`` lists instances whose build or action has run past its timeout
with the request that started it and that request's claim
(``claim_models``); ``give_up`` fails one in a single transaction: it
claims the request (a new claim, or one taken over from a host that is
down or from a handler that ended without a result), swaps the task
state away from the one seen, and writes the fault and the instance-
action event. Two API processes racing for one instance meet on the
claim's unique key or on the compare-and-swap, so exactly one of them
fails it and the other's transaction rolls back.
"""

from __future__ import annotations

import dataclasses
import datetime

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from pyct_driver import exception, states
from pyct_driver.db import instances as db_instances
from pyct_driver.db import models, stuck_moves
from pyct_driver.db.claim_models import TIMED_OUT, RequestClaim
from pyct_driver.db.engine import Database, row_to_dict

# tasks that one cast carries out in one handler, and the name that
# handler claims the request under (``compute.request_once``); the longer
# flows (resize, migration, rebuild, snapshot, shelve) are
# ``db.stuck_moves``'
_METHODS = {
    **dict.fromkeys(states.BUILD_TASK_STATES, "build_and_run_instance"),
    states.DELETING: "terminate_instance",
    **dict.fromkeys(states.REBOOT_TASK_STATES, "reboot"),
    states.POWERING_OFF: "power_off", states.POWERING_ON: "power_on",
    states.PAUSING: "pause", states.UNPAUSING: "unpause",
    states.SUSPENDING: "suspend", states.RESUMING: "resume",
    states.RESCUING: "rescue", states.UNRESCUING: "unrescue",
}
ACTION_TASK_STATES = tuple(task for task in _METHODS
                           if task not in states.BUILD_TASK_STATES) \
    + stuck_moves.TASK_STATES


@dataclasses.dataclass(frozen=True)
class Stuck:
    """An instance past its timeout, as ``find`` saw it."""

    uuid: str
    host: str | None
    vm_state: str
    task_state: str  # ``stuck_moves.CONFIRMING`` for a confirm
    request_id: str | None  # of the newest action; None: no action row
    claim: dict | None
    method: str  # the handler's name the request is claimed under

    @property
    def build(self) -> bool:
        return self.task_state in states.BUILD_TASK_STATES and \
            self.vm_state == states.BUILDING

    @property
    def long(self) -> bool:
        """A resize, migration, rebuild, snapshot or shelve flow."""
        return self.method not in _METHODS.values()

    @property
    def what(self) -> str:
        if self.build:
            return "Build"
        if self.task_state == stuck_moves.CONFIRMING:
            return "Confirm of the resize"
        return f"Task {self.task_state}"


_Lost = stuck_moves.Lost


def find(db: Database, build_before: datetime.datetime | None,
         action_before: datetime.datetime | None) -> list[Stuck]:
    """Builds created before ``build_before`` and actions last changed
    before ``action_before`` (None: that kind is not timed out)."""
    inst = models.Instance
    kinds = []
    if build_before is not None:
        kinds.append(sa.and_(inst.vm_state == states.BUILDING,
                             inst.task_state.in_(states.BUILD_TASK_STATES),
                             inst.created_at < build_before))
    if action_before is not None:
        kinds.append(sa.and_(inst.task_state.in_(ACTION_TASK_STATES),
                             sa.func.coalesce(inst.updated_at,
                                              inst.created_at)
                             < action_before))
        kinds.append(sa.and_(stuck_moves.unshelving(inst),
                             sa.func.coalesce(inst.updated_at,
                                              inst.created_at)
                             < action_before))
    if not kinds:
        return []
    out = []
    with db.session() as session:
        rows = session.execute(sa.select(
            inst.uuid, inst.host, inst.vm_state, inst.task_state).where(
                inst.deleted == 0, sa.or_(*kinds))).all()
        if action_before is not None:
            rows += [(uuid, host, vm_state, stuck_moves.CONFIRMING)
                     for uuid, host, vm_state in
                     stuck_moves.find_confirms(session, action_before)]
        for uuid, host, vm_state, task in rows:
            action = session.execute(sa.select(
                models.InstanceAction.request_id,
                models.InstanceAction.action).where(
                    models.InstanceAction.instance_uuid == uuid).order_by(
                        models.InstanceAction.id.desc())).first()
            request_id, name = action or (None, None)
            is_build = task in states.BUILD_TASK_STATES and \
                vm_state == states.BUILDING
            method = _METHODS[task] if task in _METHODS and (
                is_build or task not in states.BUILD_TASK_STATES) \
                else stuck_moves.method(session, uuid, host, task,
                                        vm_state, name)
            claim = None if request_id is None else session.scalars(
                sa.select(RequestClaim).where(
                    RequestClaim.instance_uuid == uuid,
                    RequestClaim.request_id == request_id,
                    RequestClaim.method == method)).first()
            out.append(Stuck(uuid, host, vm_state, task, request_id,
                             None if claim is None else row_to_dict(claim),
                             method))
    return out


def give_up(db: Database, stuck: Stuck, owner: str, message: str,
            host_down: bool) -> bool:
    """Fail ``stuck``: True if this call did, False if another process
    (an API's timeout, or a compute service that took the request) was
    first. A build goes to ERROR; a delete on a host that is down is
    finished here (the host destroys the guest when it returns); any
    other action gives the task state back."""
    try:
        with db.session() as session:
            _claim(session, stuck, owner)
            if stuck.task_state == states.DELETING and host_down:
                db_instances.soft_delete_in(session, stuck.uuid)
            elif stuck.long:
                stuck_moves.fail(session, stuck.uuid, stuck.task_state,
                                 stuck.vm_state, stuck.method)
            else:
                _swap(session, stuck)
            _record(session, stuck, message)
    except (_Lost, exception.InstanceNotFound):
        return False
    except exception.DBError as err:
        if isinstance(err.__cause__, sa_exc.IntegrityError):
            return False  # a racing process inserted the claim first
        raise
    return True


def _claim(session: sa.orm.Session, stuck: Stuck, owner: str) -> None:
    if stuck.request_id is None:
        return  # nothing to claim; the compare-and-swap decides alone
    if stuck.claim is None:
        session.add(RequestClaim(
            instance_uuid=stuck.uuid, request_id=stuck.request_id,
            method=stuck.method, owner=owner, state=TIMED_OUT))
        session.flush()  # the unique key answers here
        return
    taken = session.execute(sa.update(RequestClaim).where(
        RequestClaim.id == stuck.claim["id"],
        RequestClaim.state == stuck.claim["state"]).values(
            state=TIMED_OUT, owner=owner, updated_at=models.utcnow()))
    if taken.rowcount != 1:
        raise _Lost()


def _swap(session: sa.orm.Session, stuck: Stuck) -> None:
    values: dict = {"task_state": None, "updated_at": models.utcnow()}
    if stuck.build:
        values.update(vm_state=states.ERROR, power_state=states.NOSTATE)
    swapped = session.execute(sa.update(models.Instance).where(
        models.Instance.uuid == stuck.uuid, models.Instance.deleted == 0,
        models.Instance.task_state == stuck.task_state).values(**values))
    if swapped.rowcount != 1:
        raise _Lost()


def _record(session: sa.orm.Session, stuck: Stuck, message: str) -> None:
    now = models.utcnow()
    session.add(models.InstanceFault(
        instance_uuid=stuck.uuid, code=500, message=message[:255],
        details=message, host=stuck.host))
    if stuck.request_id is None:
        return
    action = session.scalars(sa.select(models.InstanceAction).where(
        models.InstanceAction.instance_uuid == stuck.uuid,
        models.InstanceAction.request_id == stuck.request_id).order_by(
            models.InstanceAction.id.desc())).first()
    if action is None:
        return
    event = "api_build_timeout" if stuck.build else "api_action_timeout"
    session.add(models.InstanceActionEvent(
        action_id=action.id, event=event, start_time=now, finish_time=now,
        result="Error", traceback=message, host=stuck.host))
    action.finish_time = now
    action.message = "Error"
