"""The guest's seccomp filter against the real kernel.

A fresh single-threaded interpreter (``python -c``) forks two children: one
probes each syscall without the filter (the baseline), the other installs
the filter and probes again. Probes pass arguments the kernel would reject
on its own (NULL pointers, bad flags), so a filter that let a call through
could never change the host: the errno tells who refused it.
"""

import json
import os
import subprocess
import sys
import tempfile

import pytest

from pyct_driver.virt.process.guestinit import seccomp

HELPER = r'''
import ctypes, errno, json, os, signal, socket, sys
from pyct_driver.virt.process.guestinit import seccomp

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
NR = seccomp.SYSCALLS[seccomp.native_arch()]
X86 = seccomp.native_arch() == "x86_64"
L = ctypes.c_long
buf = ctypes.create_string_buffer(256)

def sc(name, *args):
    nr = NR[name] if isinstance(name, str) else name
    ret = libc.syscall(L(nr), *[a if isinstance(a, (bytes, ctypes.Array))
                                else L(a) for a in args])
    if ret < 0:
        return errno.errorcode[ctypes.get_errno()]
    return "ok"

PROBES = {
    "keyctl": ("keyctl", 0, -3, 0),              # KEYCTL_GET_KEYRING_ID
    "add_key": ("add_key", 0, 0, 0, 0, -1),
    "request_key": ("request_key", 0, 0, 0, 0),
    "bpf": ("bpf", 5, 0, 0),
    "perf_event_open": ("perf_event_open", 0, 0, -1, -1, 0),
    "userfaultfd": ("userfaultfd", 0x7FFFFFFF),
    "io_uring_setup": ("io_uring_setup", 1, 0),
    "init_module": ("init_module", 0, 0, 0),
    "finit_module": ("finit_module", -1, b"", 0),
    "delete_module": ("delete_module", 0, 0),
    "kexec_load": ("kexec_load", 0, 0, 0, 0xFFFF0000),
    "kexec_file_load": ("kexec_file_load", -1, -1, 0, 0, 0xFFFF0000),
    "open_by_handle_at": ("open_by_handle_at", -1, 0, 0),
    "swapon": ("swapon", 0, 0),
    "swapoff": ("swapoff", 0),
    "syslog": ("syslog", 3, buf, 64),            # SYSLOG_ACTION_READ_ALL
    "acct": ("acct", 1),
    "settimeofday": ("settimeofday", 0, 0),
    "clock_settime": ("clock_settime", 0, 0),
    "clock_adjtime": ("clock_adjtime", 0, 0),
    "adjtimex": ("adjtimex", 0),
    "quotactl": ("quotactl", 0, 0, 0, 0),
    "personality_rie": ("personality", 0x0400000),
    "fsopen": ("fsopen", b"tmpfs", 0),
    "open_tree": ("open_tree", -100, b"/", 0),
    "socket_alg": ("socket", 38, 5, 0),
    "socket_vsock": ("socket", 40, 1, 0),
    "socketpair_alg": ("socketpair", 38, 5, 0, buf),
}
if X86:
    PROBES["iopl"] = ("iopl", 4)
    PROBES["ioperm"] = ("ioperm", 0x10000, 1, 1)

def in_child(func):
    pid = os.fork()
    if pid == 0:
        try:
            code = func()
        except BaseException:
            code = 3
        os._exit(code or 0)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return "signal " + signal.Signals(os.WTERMSIG(status)).name
    return "exit %d" % os.WEXITSTATUS(status)

def mount_tmpfs():
    libc.unshare(0x00020000)                     # CLONE_NEWNS
    if libc.mount(None, b"/", None, L(0x40000 | 0x4000), None) != 0:
        return 4
    if libc.mount(b"tmpfs", sys.argv[1].encode(), b"tmpfs", L(0),
                  b"size=1m") != 0:
        return 5
    with open(os.path.join(sys.argv[1], "f"), "w") as f:
        f.write("x")
    return 0

def power_off_pid_ns():
    if libc.unshare(0x20000000) != 0:            # CLONE_NEWPID
        return 6
    def init():
        if os.getpid() != 1:                     # never outside a pid ns
            return 7
        libc.reboot(ctypes.c_int(0x4321FEDC))    # LINUX_REBOOT_CMD_POWER_OFF
        return 8
    out = in_child(init)
    return 0 if out == "signal SIGINT" else 9

def probe(filtered):
    if filtered:
        seccomp.install()
    res = {name: sc(*args) for name, args in PROBES.items()}
    res["personality_query"] = sc("personality", 0xFFFFFFFF)
    res["getpid"] = "ok" if os.getpid() > 1 else "bad"
    fd = os.open("/dev/null", os.O_RDWR)
    res["rw_devnull"] = "ok" if os.write(fd, b"x") == 1 and \
        os.read(fd, 1) == b"" else "bad"
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).close()
    for s in socket.socketpair():
        s.close()
    res["inet_socket"] = "ok"
    res["fork"] = in_child(lambda: 0)
    res["mount_tmpfs_new_ns"] = in_child(mount_tmpfs)
    res["reboot_in_pid_ns"] = in_child(power_off_pid_ns)
    res["x32"] = in_child(lambda: sc(0x40000000 | 39) and 0) if X86 else ""
    with open("/proc/self/status") as f:
        status = dict(l.split(":", 1) for l in f if ":" in l)
    res["no_new_privs"] = status["NoNewPrivs"].strip()
    res["seccomp_mode"] = status["Seccomp"].strip()
    return res

out = {}
for mode in ("baseline", "filtered"):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            os.write(w, json.dumps(probe(mode == "filtered")).encode())
        except BaseException:
            import traceback
            traceback.print_exc()
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.waitpid(pid, 0)
    out[mode] = json.loads(data)
print(json.dumps(out))
'''

DENIED_EPERM = ("keyctl", "add_key", "request_key", "bpf", "perf_event_open",
                "userfaultfd", "io_uring_setup", "init_module",
                "finit_module", "delete_module", "kexec_load",
                "kexec_file_load", "open_by_handle_at", "swapon", "swapoff",
                "syslog", "acct", "settimeofday", "clock_settime",
                "clock_adjtime", "adjtimex", "quotactl", "personality_rie")


@pytest.fixture(scope="module")
def results():
    with tempfile.TemporaryDirectory(prefix="pyct-seccomp-") as tmp:
        proc = subprocess.run(
            [sys.executable, "-c", HELPER, tmp], capture_output=True,
            text=True, timeout=60,
            cwd=os.path.dirname(os.path.dirname(os.path.dirname(
                os.path.abspath(__file__)))))
        assert proc.returncode == 0, proc.stderr
        # The tmpfs lived only in the child's mount namespace.
        assert os.listdir(tmp) == []
    return json.loads(proc.stdout)


def test_denied_calls_get_eperm_and_kernel_would_answer(results):
    base, filt = results["baseline"], results["filtered"]
    for name in DENIED_EPERM:
        assert filt[name] == "EPERM", (name, filt[name])
    if seccomp.native_arch() == "x86_64":
        assert filt["iopl"] == filt["ioperm"] == "EPERM"
    # Without the filter the kernel itself decides, with another answer
    # (io_uring may be switched off by sysctl on some hosts).
    same = [n for n in DENIED_EPERM if base[n] == "EPERM"]
    assert set(same) <= {"io_uring_setup"}, same


def test_new_mount_api_is_enosys(results):
    assert results["filtered"]["fsopen"] == "ENOSYS"
    assert results["filtered"]["open_tree"] == "ENOSYS"
    assert results["baseline"]["fsopen"] == "ok"


def test_alg_and_vsock_sockets_refused(results):
    base, filt = results["baseline"], results["filtered"]
    for name in ("socket_alg", "socket_vsock", "socketpair_alg"):
        assert filt[name] == "EAFNOSUPPORT", name
    # The filter, not the kernel, refused: at least one family exists here
    # (this host has vsock but no AF_ALG).
    assert "ok" in (base["socket_alg"], base["socket_vsock"])


def test_allowed_calls_still_work(results):
    filt = results["filtered"]
    for name in ("getpid", "rw_devnull", "inet_socket", "personality_query"):
        assert filt[name] == "ok", name
    assert filt["fork"] == "exit 0"
    assert filt["mount_tmpfs_new_ns"] == "exit 0"
    assert filt["reboot_in_pid_ns"] == "exit 0"


def test_filter_mode_without_no_new_privs(results):
    assert results["filtered"]["seccomp_mode"] == "2"
    assert results["filtered"]["no_new_privs"] == "0"
    assert results["baseline"]["seccomp_mode"] == "0"


@pytest.mark.skipif(seccomp.native_arch() != "x86_64", reason="x32 is x86")
def test_x32_abi_killed(results):
    assert results["filtered"]["x32"] == "signal SIGSYS"
    assert results["baseline"]["x32"] != "signal SIGSYS"
