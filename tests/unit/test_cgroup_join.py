"""How C1 joins the guest's cgroups (issue #16): on cgroup v1 by thread
-- 0 to each hierarchy's ``tasks`` -- which the kernel does without the
RCU grace period a pid written to ``cgroup.procs`` waits for; on v2 (no
``tasks``) by pid to ``cgroup.procs``."""

import os

import pytest

from pyct_driver import exception
from pyct_driver.virt.process import spec
from pyct_driver.virt.process.guestinit import nsinit


def _guest(procs):
    return spec.GuestSpec(uuid="u", root="/r", hostname="h",
                          cgroup_procs=tuple(str(p) for p in procs),
                          console_log="/l")


def test_v1_joins_by_thread_through_tasks(tmp_path):
    procs = []
    for name in ("cpu", "pids"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "cgroup.procs").write_text("")
        (tmp_path / name / "tasks").write_text("")
        procs.append(tmp_path / name / "cgroup.procs")
    nsinit._join_cgroups(_guest(procs))
    for name in ("cpu", "pids"):
        assert (tmp_path / name / "tasks").read_text() == "0"
        assert (tmp_path / name / "cgroup.procs").read_text() == ""


def test_v2_joins_by_pid_through_cgroup_procs(tmp_path):
    (tmp_path / "cgroup.procs").write_text("")
    nsinit._join_cgroups(_guest([tmp_path / "cgroup.procs"]))
    assert (tmp_path / "cgroup.procs").read_text() == str(os.getpid())


def test_a_refused_join_names_its_cgroup(tmp_path):
    (tmp_path / "tasks").mkdir()  # writing it fails: EISDIR
    with pytest.raises(exception.ProcessError) as err:
        nsinit._join_cgroups(_guest([tmp_path / "cgroup.procs"]))
    assert err.value.kwargs["step"] == \
        f"join cgroup {tmp_path / 'cgroup.procs'}"
