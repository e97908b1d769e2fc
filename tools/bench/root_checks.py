"""What a guest sees of a size-limited root, for ``root_disk.py``: how
far a writer gets past the limit, whether room a removed file freed can
be written again at once (and as fast as a fresh root), and the rate of
O_DIRECT writes from a blkio group throttled on the root's block device.
The writer is host root writing through the overlay, as overlayfs writes
its upper directory with its mounter's credentials: a limit that exempts
CAP_SYS_RESOURCE would not stop it.
"""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import time

GIB = 1 << 30


def describe_fill(written: int, error: str | None, limit: int = GIB,
                  who: str = "host root write") -> dict:
    """Where a writer (or writers, ``who``) was stopped, and how far past
    ``limit`` it got (negative: stopped short of it, as a file system's
    own metadata takes room)."""
    text = (f"NOT stopped ({written >> 20} MiB written)" if error is None
            else f"stopped at {written >> 20} MiB ({error})")
    return {who: text, f"{who}: past limit MiB": (written - limit) / (1 << 20)}


def fill(path: str, limit: int) -> tuple[int, str | None]:
    """Write zeros to ``path`` up to ``limit`` bytes and fsync; the bytes
    written and the error that stopped it (None: not stopped)."""
    chunk, done = b"\0" * (1 << 20), 0
    try:
        with open(path, "wb") as f:
            while done < limit:
                done += f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
    except OSError as err:
        return done, err.strerror
    return done, None


def timed_fill(path: str, size: int) -> str:
    start = time.perf_counter()
    written, error = fill(path, size)
    took = (time.perf_counter() - start) * 1000
    os.unlink(path)
    return (f"ok in {took:.0f} ms" if error is None else
            f"stopped at {written >> 20} MiB ({error})")


def parallel_fill(root: str, writers: int, each: int) -> tuple[int, str]:
    """``writers`` threads (file writes drop the GIL) each write up to
    ``each`` bytes into their own file at once; the bytes written in all,
    the errors that stopped them."""
    paths = [os.path.join(root, f"fill{num}") for num in range(writers)]
    with concurrent.futures.ThreadPoolExecutor(writers) as pool:
        results = list(pool.map(lambda path: fill(path, each), paths))
    for path in paths:
        os.unlink(path)
    errors = sorted({error or "not stopped" for _, error in results})
    return sum(done for done, _ in results), ", ".join(errors)


def write_past(root: str, fresh: str) -> dict:
    """Host root writes up to 2 GiB into the overlay: where does it stop?
    Then it removes the file and at once writes 512 MiB again: is the
    freed room usable before the file system next commits, and how long
    does it take next to 512 MiB written into the ``fresh`` root? Last,
    4 writers of 512 MiB each at once: do they get further together?"""
    path = os.path.join(root, "fill")
    written, error = fill(path, 2 * GIB)
    out = describe_fill(written, error)
    os.unlink(path)
    out["rm, then 512 MiB"] = timed_fill(path, 512 << 20)
    out["512 MiB, fresh root"] = timed_fill(os.path.join(fresh, "fill"),
                                            512 << 20)
    out.update(describe_fill(*parallel_fill(root, 4, 512 << 20),
                             who="4 writers"))
    return out


def direct_write_rate(path: str, device: str, rate: int = 4 << 20) -> str:
    """MiB/s of 8 MiB of O_DIRECT writes into the root at ``path`` from a
    blkio group limited to ``rate`` bytes/s on ``device`` (MAJ:MIN; cgroup
    v1, as test_direct_writes_are_throttled runs in a guest)."""
    group = f"/sys/fs/cgroup/blkio/pyct-bench-rootdisk-{os.getpid()}"
    if not os.path.isdir(os.path.dirname(group)):
        return "no v1 blkio hierarchy"
    os.mkdir(group)
    try:
        with open(os.path.join(group, "blkio.throttle.write_bps_device"),
                  "w") as f:
            f.write(f"{device} {rate}")

        def join() -> None:
            with open(os.path.join(group, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))
        start = time.perf_counter()
        subprocess.run(["dd", "if=/dev/zero", f"of={path}/dd",
                        "bs=256K", "count=32", "oflag=direct"], check=True,
                       capture_output=True, preexec_fn=join)
        rate_now = (8 << 20) / (time.perf_counter() - start) / (1 << 20)
        os.unlink(f"{path}/dd")
        return f"{rate_now:.2f} MiB/s (limit {rate >> 20})"
    finally:
        os.rmdir(group)
