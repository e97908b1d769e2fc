"""Nova's instance state vocabulary and the API status map.

pyct speaks Nova's words so that every client and operator tool reads our
servers correctly: ``vm_state`` is the stable state, ``task_state`` the
operation in flight (``None`` when idle), ``power_state`` what the virt driver
last observed. ``status_of`` folds the three into the API's ``status``.
"""

from __future__ import annotations

# vm_state
ACTIVE = "active"
BUILDING = "building"
PAUSED = "paused"
SUSPENDED = "suspended"
STOPPED = "stopped"
RESCUED = "rescued"
RESIZED = "resized"
SOFT_DELETED = "soft-deleted"
DELETED = "deleted"
ERROR = "error"
SHELVED = "shelved"
SHELVED_OFFLOADED = "shelved_offloaded"

# task_state
SCHEDULING = "scheduling"
NETWORKING = "networking"
SPAWNING = "spawning"
REBOOTING = "rebooting"
REBOOT_PENDING = "reboot_pending"
REBOOT_STARTED = "reboot_started"
REBOOTING_HARD = "rebooting_hard"
REBOOT_PENDING_HARD = "reboot_pending_hard"
REBOOT_STARTED_HARD = "reboot_started_hard"
PAUSING = "pausing"
UNPAUSING = "unpausing"
POWERING_OFF = "powering-off"
POWERING_ON = "powering-on"
DELETING = "deleting"
IMAGE_SNAPSHOT = "image_snapshot"
IMAGE_SNAPSHOT_PENDING = "image_snapshot_pending"
IMAGE_PENDING_UPLOAD = "image_pending_upload"
IMAGE_UPLOADING = "image_uploading"
IMAGE_BACKUP = "image_backup"
SHELVING = "shelving"
SHELVING_IMAGE_PENDING_UPLOAD = "shelving_image_pending_upload"
SHELVING_IMAGE_UPLOADING = "shelving_image_uploading"
SHELVING_OFFLOADING = "shelving_offloading"
UNSHELVING = "unshelving"
RESIZE_PREP = "resize_prep"
RESIZE_MIGRATING = "resize_migrating"
RESIZE_MIGRATED = "resize_migrated"
RESIZE_FINISH = "resize_finish"
RESIZE_REVERTING = "resize_reverting"
REBUILDING = "rebuilding"
REBUILD_SPAWNING = "rebuild_spawning"
RESCUING = "rescuing"
UNRESCUING = "unrescuing"
SUSPENDING = "suspending"
RESUMING = "resuming"

# power_state (numeric, as Nova stores them)
NOSTATE = 0
RUNNING = 1
PAUSED_POWER = 3
SHUTDOWN = 4
CRASHED = 6
SUSPENDED_POWER = 7

POWER_STATE_NAMES = {
    NOSTATE: "NOSTATE", RUNNING: "Running", PAUSED_POWER: "Paused",
    SHUTDOWN: "Shutdown", CRASHED: "Crashed", SUSPENDED_POWER: "Suspended",
}

# task states that mean "a compute service is working on it"; on compute
# start-up an instance found in one of these was interrupted.
BUILD_TASK_STATES = (SCHEDULING, NETWORKING, SPAWNING)
REBOOT_TASK_STATES = (REBOOTING, REBOOT_PENDING, REBOOT_STARTED,
                      REBOOTING_HARD, REBOOT_PENDING_HARD,
                      REBOOT_STARTED_HARD)
RESIZE_TASK_STATES = (RESIZE_PREP, RESIZE_MIGRATING, RESIZE_MIGRATED,
                      RESIZE_FINISH)
REBUILD_TASK_STATES = (REBUILDING, REBUILD_SPAWNING)
SNAPSHOT_TASK_STATES = (IMAGE_SNAPSHOT_PENDING, IMAGE_SNAPSHOT, IMAGE_BACKUP,
                        IMAGE_PENDING_UPLOAD, IMAGE_UPLOADING)
SHELVE_TASK_STATES = (SHELVING, SHELVING_IMAGE_PENDING_UPLOAD,
                      SHELVING_IMAGE_UPLOADING)

_STATUS_BY_VM_STATE = {
    ACTIVE: "ACTIVE",
    BUILDING: "BUILD",
    STOPPED: "SHUTOFF",
    RESIZED: "VERIFY_RESIZE",
    PAUSED: "PAUSED",
    SUSPENDED: "SUSPENDED",
    RESCUED: "RESCUE",
    ERROR: "ERROR",
    DELETED: "DELETED",
    SOFT_DELETED: "SOFT_DELETED",
    SHELVED: "SHELVED",
    SHELVED_OFFLOADED: "SHELVED_OFFLOADED",
}

_STATUS_BY_TASK_STATE = {
    ACTIVE: {
        REBOOTING: "REBOOT", REBOOT_PENDING: "REBOOT",
        REBOOT_STARTED: "REBOOT", REBOOTING_HARD: "HARD_REBOOT",
        REBOOT_PENDING_HARD: "HARD_REBOOT",
        REBOOT_STARTED_HARD: "HARD_REBOOT",
        **dict.fromkeys(RESIZE_TASK_STATES, "RESIZE"),
        **dict.fromkeys(REBUILD_TASK_STATES, "REBUILD"),
    },
    STOPPED: {**dict.fromkeys(RESIZE_TASK_STATES, "RESIZE"),
              **dict.fromkeys(REBUILD_TASK_STATES, "REBUILD")},
    ERROR: dict.fromkeys(REBUILD_TASK_STATES, "REBUILD"),
    RESIZED: {RESIZE_REVERTING: "REVERT_RESIZE"},
}

# every status a client may filter on
ALL_STATUSES = sorted(set(_STATUS_BY_VM_STATE.values()) | {
    "REBOOT", "HARD_REBOOT", "RESIZE", "REVERT_RESIZE", "REBUILD",
    "UNKNOWN"})


def status_of(vm_state: str | None, task_state: str | None) -> str:
    """Return the API status for a (vm_state, task_state) pair."""
    by_task = _STATUS_BY_TASK_STATE.get(vm_state or "", {})
    if task_state in by_task:
        return by_task[task_state]
    if task_state == DELETING and vm_state != ERROR:
        return "ACTIVE" if vm_state == ACTIVE else _STATUS_BY_VM_STATE.get(
            vm_state or "", "UNKNOWN")
    return _STATUS_BY_VM_STATE.get(vm_state or "", "UNKNOWN")


def vm_states_for_status(status: str) -> list[tuple[str, str | None]]:
    """Return the (vm_state, task_state-or-None) pairs a status filter means.

    ``None`` as task_state means "any task state not mapped elsewhere".
    """
    status = status.upper()
    pairs: list[tuple[str, str | None]] = []
    for vm, tasks in _STATUS_BY_TASK_STATE.items():
        for task, st in tasks.items():
            if st == status:
                pairs.append((vm, task))
    for vm, st in _STATUS_BY_VM_STATE.items():
        if st == status:
            pairs.append((vm, None))
    return pairs
