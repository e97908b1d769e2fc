"""bpf(2): load an eBPF program, attach it to a cgroup or detach it.

``prog_load`` hands the kernel a program from ``ebpf.Program`` and
returns its fd; when the verifier refuses it, the call is repeated with
the verifier's log on and the log's tail goes into the ``OSError``, so
a refusal says why. Loading without the log first keeps the common path
cheap (the kernel formats nothing). ``prog_attach``/``prog_detach`` are
BPF_PROG_ATTACH/DETACH; tc filters take the program fd through netlink
instead (``virt.network.tcfilter``). The one attribute union is a
128-byte buffer: the kernel wants the unused tail zeroed.
"""

from __future__ import annotations

import ctypes
import struct

from pyct_driver.virt.kernel import libc

BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_TEST_RUN = 10
BPF_PROG_TYPE_SCHED_CLS = 3
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
ATTR_SIZE = 128
LOG_SIZE = 65536


def _bpf(cmd: int, attr: bytes, what: str,
         buf: ctypes.Array | None = None) -> int:
    """bpf(2) ``cmd`` with ``attr`` (in ``buf``, if given, to read the
    kernel's answer back from it)."""
    if buf is None:
        buf = ctypes.create_string_buffer(ATTR_SIZE)
    buf[:len(attr)] = attr
    return libc.current().syscall("bpf", cmd, libc.pointer(buf),
                                  ATTR_SIZE, what=what)


def prog_load(prog_type: int, code: bytes, name: str,
              license_: str = "GPL") -> int:
    """Load ``code`` as a program of ``prog_type`` called ``name`` (15
    bytes kept); returns its fd (close-on-exec, the caller's)."""
    insns = ctypes.create_string_buffer(code, len(code))
    lic = ctypes.create_string_buffer(license_.encode())
    log = ctypes.create_string_buffer(LOG_SIZE)

    def attr(level: int) -> bytes:
        return struct.pack(
            "<IIQQIIQII16s", prog_type, len(code) // 8,
            ctypes.addressof(insns), ctypes.addressof(lic), level,
            LOG_SIZE if level else 0, ctypes.addressof(log) if level else 0,
            0, 0, name.encode()[:15])

    try:
        return _bpf(BPF_PROG_LOAD, attr(0), f"bpf load {name}")
    except OSError:
        pass  # again with the verifier's log, to say why
    try:
        return _bpf(BPF_PROG_LOAD, attr(1), f"bpf load {name}")
    except OSError as err:
        verifier = log.value.decode(errors="replace")[-500:]
        raise OSError(err.errno, f"{err.strerror}; verifier: "
                      f"{verifier}") from err


def prog_attach(target_fd: int, prog_fd: int, attach_type: int,
                flags: int = 0) -> None:
    """Attach ``prog_fd`` to ``target_fd`` (a cgroup directory); flags 0
    replaces a program attached before and forbids sub-groups from
    overriding it."""
    _bpf(BPF_PROG_ATTACH, struct.pack("<IIII", target_fd, prog_fd,
                                      attach_type, flags), "bpf attach")


def prog_detach(target_fd: int, prog_fd: int, attach_type: int) -> None:
    _bpf(BPF_PROG_DETACH, struct.pack("<IIII", target_fd, prog_fd,
                                      attach_type, 0), "bpf detach")


def prog_test_run(prog_fd: int, data: bytes) -> int:
    """Run the loaded program once on the packet ``data``
    (BPF_PROG_TEST_RUN); returns its return value. For tests."""
    data_in = ctypes.create_string_buffer(data, len(data))
    data_out = ctypes.create_string_buffer(len(data) + 256)
    buf = ctypes.create_string_buffer(ATTR_SIZE)
    attr = struct.pack("<IIIIQQI", prog_fd, 0, len(data), len(data_out),
                       ctypes.addressof(data_in),
                       ctypes.addressof(data_out), 1)
    _bpf(BPF_PROG_TEST_RUN, attr, "bpf test run", buf)
    return struct.unpack_from("<I", buf, 4)[0]
