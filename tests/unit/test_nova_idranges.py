"""The Nova adapter's file-kept uid/gid ranges (no Nova needed)."""

from __future__ import annotations

import threading

from pyct_driver.nova import idranges


def test_blocks_are_disjoint_stable_and_reused(tmp_path):
    ranges = idranges.IdRanges(str(tmp_path))
    first = ranges.allocate("a")
    assert first == (idranges.BASE, idranges.RANGE_SIZE)
    assert ranges.allocate("a") == first          # idempotent
    second = ranges.allocate("b")
    assert second[0] == idranges.BASE + idranges.RANGE_SIZE
    # kept on disk: a restarted nova-compute sees the same blocks
    assert idranges.IdRanges(str(tmp_path)).get("b") == second
    ranges.release("a")
    ranges.release("a")                           # idempotent
    assert ranges.get("a") is None
    assert ranges.allocate("c") == first          # the freed block


def test_concurrent_allocations_never_share_a_block(tmp_path):
    ranges = idranges.IdRanges(str(tmp_path))
    got: dict[str, tuple[int, int]] = {}

    def take(name: str) -> None:
        got[name] = idranges.IdRanges(str(tmp_path)).allocate(name)

    threads = [threading.Thread(target=take, args=(f"g{i}",))
               for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    starts = [start for start, _ in got.values()]
    assert len(set(starts)) == 16
    assert ranges._table() == {k: v[0] for k, v in got.items()}
