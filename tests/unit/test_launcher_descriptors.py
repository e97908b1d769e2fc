"""The fork server's descriptors at scale: its open-file limit and what a
guest's C1 keeps of the launcher's descriptors (issue #16)."""

import os
import resource

from pyct_driver.virt.process.forkserver import daemon, pending


def test_raise_nofile_lifts_a_low_soft_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        now = daemon.raise_nofile()
        assert now[0] == now[1] >= hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_c1_keeps_only_its_own_descriptors_past_1024():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 4096), hard))
    r, w = os.pipe()
    many = [os.dup2(r, fd) for fd in range(1000, 3000, 7)]
    keep = os.dup2(r, 2999)
    try:
        pid = os.fork()
        if pid == 0:  # what pending.fork_gated's child does, then report
            try:
                pending.keep_only(0, 1, 2, w, None, keep)
                left = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
                extra = set(left) - {0, 1, 2, w, keep}
                # at most listdir's own descriptor, a low one
                ok = {0, 1, 2, w, keep} <= set(left) and len(extra) <= 1 \
                    and not extra & set(many)
                os.write(w, b"ok" if ok else repr(left).encode())
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        assert os.read(r, 4096) == b"ok"
    finally:
        for fd in (r, w, keep, *many):
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
