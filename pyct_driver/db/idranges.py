"""Host uid/gid ranges of unprivileged instances, allocated in the database.

Every instance that is not privileged gets its own block of 65,536 ids:
its user namespace maps guest ids 0..65535 to host ids start..start+65535.
Blocks are multiples of ``RANGE_SIZE`` counted from ``base`` (never 0, so
no guest id is ever host root), and the unique key on ``range_start`` keeps
them disjoint across every compute host and API worker: two allocators that
pick the same free block race on the insert, and the loser takes the next
free one. A block belongs to its instance until ``release`` (called in the
transaction that soft-deletes the instance), so it survives reboots and
service restarts, and files the guest left on its disk stay owned by it.
"""

from __future__ import annotations

import sqlalchemy as sa

from pyct_driver import exception
from pyct_driver.db import models
from pyct_driver.db import networks as db_networks
from pyct_driver.db.engine import Database

RANGE_SIZE = 65536
# 2**30: far above the host's own users (systemd keeps < 65536 for system
# and regular users and 524288.. for nspawn) and leaves 49,151 blocks
# below (uid_t)-1, which the kernel treats as "no id".
DEFAULT_BASE = 1 << 30
UID_LIMIT = (1 << 32) - 1


# built once: every build reads its range (twice) and allocates one
_OF_INSTANCE = sa.select(models.IdRange).where(
    models.IdRange.instance_uuid == sa.bindparam("uuid"))
_STARTS = sa.select(models.IdRange.range_start).where(
    models.IdRange.range_start >= sa.bindparam("base")).order_by(
    models.IdRange.range_start)


def get(db: Database, instance_uuid: str) -> tuple[int, int] | None:
    """The instance's (start, size), or None if it has no range."""
    with db.session() as session:
        row = session.scalars(_OF_INSTANCE, {"uuid": instance_uuid}).first()
        return None if row is None else (int(row.range_start),
                                         int(row.range_size))


def _first_free(starts: list[int], base: int) -> int:
    candidate = base
    for start in starts:  # sorted
        if start < candidate:
            continue
        if start > candidate:
            break
        candidate += RANGE_SIZE
    if candidate + RANGE_SIZE > UID_LIMIT:
        raise exception.VirtError(
            reason="no free uid/gid range left for a new instance")
    return candidate


def allocate(db: Database, instance_uuid: str,
             base: int = DEFAULT_BASE) -> tuple[int, int]:
    """The instance's range, allocating the first free block if it has
    none yet (idempotent; safe against concurrent allocators)."""
    if base <= 0 or base % RANGE_SIZE:
        raise exception.InvalidInput(
            reason=f"id range base {base} must be a positive multiple of "
                   f"{RANGE_SIZE}")

    def attempt() -> tuple[int, int]:
        with db.session() as session:
            row = session.scalars(_OF_INSTANCE,
                                  {"uuid": instance_uuid}).first()
            if row is not None:
                return int(row.range_start), int(row.range_size)
            starts = list(session.scalars(_STARTS, {"base": base}))
            start = _first_free([int(s) for s in starts], base)
            session.add(models.IdRange(instance_uuid=instance_uuid,
                                       range_start=start,
                                       range_size=RANGE_SIZE))
            session.flush()
            return start, RANGE_SIZE

    return db_networks.retrying(attempt)


def release_in(session, instance_uuid: str) -> int:
    """Free the instance's range inside the caller's transaction."""
    return session.execute(sa.delete(models.IdRange).where(
        models.IdRange.instance_uuid == instance_uuid)).rowcount


def release(db: Database, instance_uuid: str) -> bool:
    """Free the instance's range; False if it had none (already freed)."""
    with db.session() as session:
        return release_in(session, instance_uuid) == 1
