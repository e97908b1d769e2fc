"""pyct:nesting without root: the extra spec, the seccomp variant, the
guest's cgroup mount plan, the host's cgroup delegation on v1 and v2
(plain-directory layouts, chown recorded), and the wire formats."""

from __future__ import annotations

import errno
import os

import pytest

from pyct_driver import exception
from pyct_driver import extra_specs as es
from pyct_driver.virt import base, guest_config, ownership
from pyct_driver.virt.cgroups import v1, v2
from pyct_driver.virt.process import spec as spec_mod
from pyct_driver.virt.process.guestinit import cgroupfs, seccomp
from tests.unit.test_cgroup_v1_layout import flavor as v1_limits
from tests.unit.test_cgroup_v1_layout import make_root as make_v1_root
from tests.unit.test_seccomp_filter import ret_errno, run

WHO = (1 << 30, 1 << 30)
V1_GUEST = """\
9:name=systemd:/
8:pids:/
7:cpuset:/
4:memory:/
3:devices:/
2:cpu,cpuacct:/
0::/
"""


# -- the extra spec --------------------------------------------------------

@pytest.mark.parametrize("value", ["true", "false", "True", "FALSE"])
def test_nesting_spec_is_a_bool(value):
    es.validate_extra_specs({"pyct:nesting": value})
    assert es.nesting_from({"pyct:nesting": value}) is (value.lower()
                                                        == "true")
    assert es.nesting_from({}) is False


@pytest.mark.parametrize("value", ["yes", "1", "", "on"])
def test_nesting_spec_refuses_other_values(value):
    with pytest.raises(exception.InvalidExtraSpec) as info:
        es.validate_extra_specs({"pyct:nesting": value})
    assert "pyct:nesting" in str(info.value) and info.value.code == 400


@pytest.mark.parametrize("other", ["pyct:privileged", "pyct:host_root"])
def test_nesting_needs_a_user_namespace(other):
    with pytest.raises(exception.InvalidExtraSpec) as info:
        es.validate_extra_specs({"pyct:nesting": "true", other: "true"},
                                allow_host_root=True)
    assert "user namespace" in str(info.value)
    # false with either, or true alone, is fine
    es.validate_extra_specs({"pyct:nesting": "false", other: "true"},
                            allow_host_root=True)


# -- the seccomp variant ---------------------------------------------------

@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_nesting_filter_only_turns_keyrings_into_enosys(arch):
    plain = seccomp.build_filter(arch)
    nesting = seccomp.build_filter(arch, nesting=True)
    aid, nrs = seccomp.AUDIT_ARCH[arch], seccomp.SYSCALLS[arch]
    for name in ("keyctl", "add_key", "request_key"):
        assert run(plain, aid, nrs[name]) == ret_errno(errno.EPERM)
        assert run(nesting, aid, nrs[name]) == ret_errno(errno.ENOSYS)
    # every other syscall number gets the same verdict from both
    for nr in range(0, 460):
        if nr not in [nrs[n] for n in seccomp.NESTING_ERRNO]:
            assert run(plain, aid, nr) == run(nesting, aid, nr), nr


def test_nesting_filter_still_refuses_the_dangerous_calls():
    code = seccomp.build_filter("x86_64", nesting=True)
    aid, nrs = seccomp.AUDIT_ARCH["x86_64"], seccomp.SYSCALLS["x86_64"]
    for name in ("bpf", "kexec_load", "init_module", "open_by_handle_at",
                 "userfaultfd", "io_uring_setup", "perf_event_open"):
        assert run(code, aid, nrs[name]) == ret_errno(errno.EPERM), name


# -- the guest's cgroup mount plan ----------------------------------------

def test_nesting_plan_makes_controllers_writable():
    hierarchies, _unified = cgroupfs.hierarchies(V1_GUEST)
    plain = cgroupfs.mount_plan(hierarchies)
    nesting = cgroupfs.mount_plan(hierarchies, nesting=True)
    assert [p[:2] for p in plain] == [p[:2] for p in nesting]
    assert {name: w for name, _o, w in plain} == {
        "cpu,cpuacct": False, "cpuset": False, "devices": False,
        "memory": False, "pids": False, "systemd": True}
    assert all(writable for _n, _o, writable in nesting)


def test_delegated_compares_the_mount_owner(tmp_path):
    uid = os.stat(tmp_path).st_uid
    assert cgroupfs._delegated(str(tmp_path), f"uid={uid},gid=0")
    assert not cgroupfs._delegated(str(tmp_path), f"uid={uid + 1},gid=0")
    assert not cgroupfs._delegated(str(tmp_path), "")


# -- the host's delegation -------------------------------------------------

@pytest.fixture
def chowns(monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(ownership.os, "chown",
                        lambda path, uid, gid: calls.append(
                            (str(path), uid, gid)))
    return calls


def _v1_backend(tmp_path):
    root = make_v1_root(tmp_path)
    (root / "systemd").mkdir()
    be = v1.V1Backend(str(root), "pyct")
    be._mounts.append(str(root / "systemd"))  # a mount point on a host
    be.create("i1", v1_limits())
    for group in be.procs_files("i1"):
        for name in ("cgroup.procs", "tasks", "notify_on_release"):
            open(os.path.join(os.path.dirname(group), name), "a").close()
    return root, be


def _chowned(calls, root) -> set[str]:
    assert {(uid, gid) for _p, uid, gid in calls} == {WHO}
    return {os.path.relpath(p, root) for p, _u, _g in calls}


def test_v1_plain_delegates_only_the_tracker(tmp_path, chowns):
    root, be = _v1_backend(tmp_path)
    ownership.delegate_cgroup(be, "i1", WHO)
    assert _chowned(chowns, root) == {
        "systemd/pyct/i1", "systemd/pyct/i1/cgroup.procs",
        "systemd/pyct/i1/tasks", "systemd/pyct/i1/notify_on_release"}


def test_v1_nesting_delegates_controllers_but_cpuset(tmp_path, chowns):
    root, be = _v1_backend(tmp_path)
    ownership.delegate_cgroup(be, "i1", WHO, nesting=True)
    done = _chowned(chowns, root)
    for ctrl in ("cpu", "cpuacct", "memory", "pids", "freezer", "blkio",
                 "devices"):
        assert {f"{ctrl}/pyct/i1", f"{ctrl}/pyct/i1/cgroup.procs",
                f"{ctrl}/pyct/i1/tasks"} <= done, ctrl
    assert not [p for p in done if p.startswith("cpuset")]
    # the limit files stay the host's
    assert not [p for p in done if os.path.basename(p).startswith(
        ("memory.", "cpu.", "pids.", "devices.", "blkio.", "freezer."))]
    assert "memory/pyct/i1/notify_on_release" not in done


@pytest.fixture
def v2_backend(tmp_path):
    with open(tmp_path / "cgroup.controllers", "w") as f:
        f.write("cpuset cpu io memory pids\n")
    with open(tmp_path / "cgroup.subtree_control", "w") as f:
        f.write("")
    be = v2.V2Backend(str(tmp_path), "pyct")
    os.makedirs(tmp_path / "pyct")
    for name, text in (("cgroup.controllers", "cpu memory pids\n"),
                       ("cgroup.subtree_control", "")):
        with open(tmp_path / "pyct" / name, "w") as f:
            f.write(text)
    be.create("i1", v1_limits(dev=None))
    return tmp_path, be


def test_v2_nesting_bounds_the_guests_tree(v2_backend, chowns):
    root, be = v2_backend
    group = root / "pyct" / "i1"
    ownership.delegate_cgroup(be, "i1", WHO)
    assert not (group / "cgroup.max.descendants").exists()
    ownership.delegate_cgroup(be, "i1", WHO, nesting=True)
    assert (group / "cgroup.max.descendants").read_text() == \
        str(ownership.NESTED_MAX_DESCENDANTS)
    assert (group / "cgroup.max.depth").read_text() == \
        str(ownership.NESTED_MAX_DEPTH)
    done = _chowned(chowns, root)
    assert done == {"pyct/i1"}  # its files are absent in this layout
    assert "cgroup.max.descendants" not in \
        ownership._delegated(be, "i1", True)[0][1]


# -- what the launcher is told ---------------------------------------------

def _instance(**extra: str) -> base.InstanceSpec:
    return base.InstanceSpec(
        uuid="u1", name="n", hostname="h", image_id="img",
        flavor=base.FlavorSpec(1, 64, 1, extra_specs=dict(extra)))


def test_launch_spec_reads_nesting_from_the_flavor():
    rules = guest_config.GuestLimits()
    args = dict(root="/r", argv=["/sbin/init"], id_range=(1 << 30, 65536),
                cgroup_procs=[], console_log="/c")
    nested = guest_config.launch_spec(_instance(**{"pyct:nesting": "true"}),
                                      rules, **args)
    assert nested.nesting
    assert not guest_config.launch_spec(_instance(), rules, **args).nesting
    with pytest.raises(exception.VirtError):
        guest_config.launch_spec(_instance(**{"pyct:nesting": "true"}),
                                 rules, **{**args, "id_range": None})


def test_nesting_travels_to_the_launcher_and_to_exec():
    guest = spec_mod.GuestSpec(uuid="u1", root="/r", hostname="h",
                               nesting=True)
    assert spec_mod.GuestSpec.from_json(guest.to_json()).nesting
    record = {"pid": 5, "start_time": 7, "id_range": [1 << 30, 65536],
              "nesting": True}
    req = guest_config.exec_request("u1", record, ["/bin/sh"], None, [],
                                    guest_config.GuestLimits())
    assert req.nesting
    assert spec_mod.ExecRequest.from_dict(req.to_dict()).nesting
    # a record from before nesting existed: the plain filter
    del record["nesting"]
    assert not guest_config.exec_request("u1", record, ["/bin/sh"], None,
                                         [], guest_config.GuestLimits()
                                         ).nesting
    # only a JSON true turns it on
    assert not spec_mod.ExecRequest.from_dict(
        {**req.to_dict(), "nesting": "false"}).nesting


def test_tenant_input_never_turns_nesting_on():
    """Image properties and instance metadata are the tenant's: only the
    flavor snapshot's extra spec counts."""
    instance = base.InstanceSpec(
        uuid="u1", name="n", hostname="h", image_id="img",
        flavor=base.FlavorSpec(1, 64, 1),
        image_properties={"pyct:nesting": "true"},
        metadata={"pyct:nesting": "true"})
    spec = guest_config.launch_spec(
        instance, guest_config.GuestLimits(), root="/r",
        argv=["/sbin/init"], id_range=(1 << 30, 65536), cgroup_procs=[],
        console_log="/c")
    assert not spec.nesting


# -- who may set it --------------------------------------------------------

def test_only_an_admin_sets_the_nesting_spec():
    from pyct_driver.db import catalog
    from tests.unit.test_api_app import Harness
    h = Harness()
    base_url = "/v2.1/flavors/1/os-extra_specs"
    body = {"extra_specs": {"pyct:nesting": "true"}}
    for method, url, data in (("POST", base_url, body),
                              ("PUT", base_url + "/pyct:nesting",
                               {"pyct:nesting": "true"})):
        resp = h.request(method, url, data)
        assert resp.status_int == 403, resp.json
        assert "forbidden" in resp.json
        assert catalog.flavor_get(h.db, "1")["extra_specs"] == {}
    resp = h.admin("POST", base_url, {"extra_specs": {"pyct:nesting": "on"}})
    assert resp.status_int == 400 and "pyct:nesting" in resp.json[
        "badRequest"]["message"]
    resp = h.admin("POST", base_url, {"extra_specs": {
        "pyct:nesting": "true", "pyct:privileged": "true"}})
    assert resp.status_int == 400 and "user namespace" in resp.json[
        "badRequest"]["message"]
    assert catalog.flavor_get(h.db, "1")["extra_specs"] == {}
    assert h.admin("POST", base_url, body).status_int == 200
    assert catalog.flavor_get(h.db, "1")["extra_specs"] == {
        "pyct:nesting": "true"}
    # nor can a non-admin take it away again
    assert h.request("DELETE", base_url + "/pyct:nesting").status_int == 403
