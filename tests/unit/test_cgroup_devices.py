"""Device allow-lists: v1 file writes in a temp layout, the v2 eBPF program."""

import struct

import pytest

from pyct_driver import exception
from pyct_driver.virt.cgroups import base
from pyct_driver.virt.cgroups import devices_bpf
from pyct_driver.virt.cgroups import v1
from pyct_driver.virt.cgroups import v2

CTRLS = ("cpu", "cpuacct", "memory", "pids", "freezer", "blkio", "devices",
         "cpuset")


def limits(**kw):
    lim = base.limits_from_flavor(1, 128, 0, {}, 100, None)
    return base.CgroupLimits(**{**lim.__dict__, **kw})


def test_flavor_limits_default_to_allow_list():
    assert limits().devices == base.DEFAULT_DEVICES
    assert "c 136:* rwm" in base.DEFAULT_DEVICES
    assert not [r for r in base.DEFAULT_DEVICES if not r.startswith("c ")]


@pytest.mark.parametrize("rule", ["c 1:3", "x 1:3 rwm", "c 1:3 rwx",
                                  "c -1:3 r", "c 1:3 rr", "c 1:3 rwm\n"])
def test_bad_rules_refused(rule):
    with pytest.raises(exception.CgroupError):
        base.parse_device_rule(rule)


def test_rule_parsing():
    assert base.parse_device_rule("c 136:* wr") == base.DeviceRule(
        "c", 136, None, "rw")
    assert base.parse_device_rule("a *:* m") == base.DeviceRule(
        "a", None, None, "m")


@pytest.fixture
def v1_root(tmp_path):
    for c in CTRLS:
        (tmp_path / c).mkdir()
    (tmp_path / "cpuset" / "cpuset.cpus").write_text("0-1\n")
    (tmp_path / "cpuset" / "cpuset.mems").write_text("0\n")
    return tmp_path


def record_writes(monkeypatch):
    writes = []
    real = base.write_text

    def fake(path, value):
        writes.append((path, value))
        real(path, value)
    monkeypatch.setattr(base, "write_text", fake)
    return writes


def test_v1_deny_all_then_allow_each(v1_root, monkeypatch):
    writes = record_writes(monkeypatch)
    be = v1.V1Backend(str(v1_root), "pyct")
    be.create("i1", limits())
    for group in ("pyct", "pyct/i1"):
        d = str(v1_root / "devices" / group)
        mine = [(p.rsplit("/", 1)[1], v) for p, v in writes
                if p.rsplit("/", 1)[0] == d]
        assert mine[0] == ("devices.deny", "a")
        assert mine[1:] == [("devices.allow", r)
                            for r in base.DEFAULT_DEVICES]
    # The parent is restricted before the guest's group exists.
    first_group = next(i for i, (p, _) in enumerate(writes) if "/i1/" in p)
    last_parent = max(i for i, (p, _) in enumerate(writes)
                      if p.startswith(str(v1_root / "devices" / "pyct" /
                                          "devices.")))
    assert last_parent < first_group


def test_v1_unchanged_list_not_rewritten(v1_root, monkeypatch):
    be = v1.V1Backend(str(v1_root), "pyct")
    be.create("i1", limits())
    for d in ("pyct", "pyct/i1"):
        (v1_root / "devices" / d / "devices.list").write_text(
            "\n".join(base.DEFAULT_DEVICES) + "\n")
    writes = record_writes(monkeypatch)
    be.create("i1", limits())
    assert not [p for p, _ in writes if "/devices/" in p]
    be.create("i1", limits(devices=("c 1:3 rwm",)))
    assert (str(v1_root / "devices/pyct/i1/devices.allow"),
            "c 1:3 rwm") in writes


def test_v1_parent_list_is_configurable(v1_root):
    be = v1.V1Backend(str(v1_root), "pyct",
                      parent_devices=("c 1:3 rwm", "b 7:* r"))
    be.create("i1", limits())
    assert (v1_root / "devices/pyct/devices.allow").read_text() == "b 7:* r"
    with pytest.raises(exception.CgroupError):
        v1.V1Backend(str(v1_root), "pyct", parent_devices=("bad",))


def test_v2_plain_layout_validates_without_attaching(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids io\n")
    (tmp_path / "cgroup.subtree_control").write_text("")
    be = v2.V2Backend(str(tmp_path), "pyct")
    assert not be._device_programs
    with pytest.raises(exception.CgroupError):
        be.create("i1", limits(devices=("c x:1 r",)))


# --- the eBPF program -------------------------------------------------------

def run_ebpf(code, dev_type, access, major, minor):
    """Interpret the opcode subset build_program emits."""
    ctx = struct.pack("<III", (access << 16) | dev_type, major, minor)
    regs = [0] * 11
    insns = [struct.unpack("<BBhi", code[i:i + 8])
             for i in range(0, len(code), 8)]
    pc = 0
    for _ in range(1000):
        op, regbyte, off, imm = insns[pc]
        dst, src = regbyte & 0xF, regbyte >> 4
        imm &= 0xFFFFFFFF
        pc += 1
        if op == 0x61:
            assert src == 1
            regs[dst] = struct.unpack_from("<I", ctx, off)[0]
        elif op == 0x54:
            regs[dst] &= imm
        elif op == 0x74:
            regs[dst] = (regs[dst] & 0xFFFFFFFF) >> imm
        elif op == 0xBC:
            regs[dst] = regs[src] & 0xFFFFFFFF
        elif op == 0xB7:
            regs[dst] = imm
        elif op == 0x55:
            pc += off if regs[dst] != imm else 0
        elif op == 0x5D:
            pc += off if regs[dst] != regs[src] else 0
        elif op == 0x95:
            return regs[0]
        else:
            raise AssertionError(f"opcode {op:#x}")
    raise AssertionError("no exit")


C, B = devices_bpf.DEV_TYPE["c"], devices_bpf.DEV_TYPE["b"]
M, R, W = 1, 2, 4


def test_program_reads_ctx_and_defaults_to_deny():
    code = devices_bpf.build_program(base.DEFAULT_DEVICES)
    assert len(code) % 8 == 0 and len(code) // 8 < 100
    assert code[-16:] == (struct.pack("<BBhi", 0xB7, 0, 0, 0)
                          + struct.pack("<BBhi", 0x95, 0, 0, 0))
    assert devices_bpf.build_program(())[-16:] == code[-16:]


@pytest.mark.parametrize("dev", [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9),
                                 (5, 0), (5, 2), (136, 0),
                                 (136, 4095)])
def test_program_allows_listed_char_devices(dev):
    code = devices_bpf.build_program(base.DEFAULT_DEVICES)
    for access in (R, W, M, R | W | M):
        assert run_ebpf(code, C, access, *dev) == 1


@pytest.mark.parametrize("dev_type,dev", [(C, (1, 1)), (C, (1, 11)),
                                          (C, (10, 200)), (C, (4, 1)),
                                          (C, (5, 3)), (C, (5, 1)),
                                          (B, (254, 0)),
                                          (B, (1, 3)), (B, (136, 0)),
                                          (B, (7, 0))])
def test_program_denies_everything_else(dev_type, dev):
    code = devices_bpf.build_program(base.DEFAULT_DEVICES)
    for access in (R, W, M, R | W):
        assert run_ebpf(code, dev_type, access, *dev) == 0


def test_program_access_subset_and_wildcards():
    code = devices_bpf.build_program(("b 7:* r", "a 1:* m"))
    assert run_ebpf(code, B, R, 7, 12) == 1
    assert run_ebpf(code, B, R | W, 7, 12) == 0
    assert run_ebpf(code, B, M, 1, 2) == 1 and run_ebpf(code, C, M, 1, 2)
    assert run_ebpf(code, C, R, 1, 2) == 0
    everything = devices_bpf.build_program(("a *:* rwm", "c 1:3 r"))
    assert run_ebpf(everything, B, R | W | M, 254, 0) == 1
    assert len(everything) // 8 == 8  # nothing after the catch-all
