"""The one libc handle: every call pyct makes into the C library or
straight into the kernel goes through ``current()``.

``Libc`` loads the process's libc once (``ctypes.CDLL(None,
use_errno=True)``), declares the argument types of the functions pyct
calls, and turns a negative return into an ``OSError`` carrying errno
(so ``FileNotFoundError`` and friends come out as usual). Raw syscalls
are called by name; their numbers come from ``sysnr``. Two methods,
``_invoke`` and ``_invoke_syscall``, are the only ones touching ctypes:
a test double (tests/unit/kernel_fake.py) overrides them and is put in
place with ``replaced``, so the wrappers of this package can be checked
without root. Modules here fetch the handle at call time, never bind it
at import.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from typing import Any, Iterator

from pyct_driver.virt.kernel import sysnr

_c = ctypes
# Argument types of the libc functions pyct calls; ints passed to
# ``syscall`` are widened to longs (every syscall argument is one).
_ARGTYPES: dict[str, list] = {
    "mount": [_c.c_char_p, _c.c_char_p, _c.c_char_p, _c.c_ulong,
              _c.c_char_p],
    "umount2": [_c.c_char_p, _c.c_int],
    "unshare": [_c.c_int],
    "setns": [_c.c_int, _c.c_int],
    "prctl": [_c.c_int, _c.c_ulong, _c.c_ulong, _c.c_ulong, _c.c_ulong],
    "sethostname": [_c.c_char_p, _c.c_size_t],
    "fallocate": [_c.c_int, _c.c_int, _c.c_int64, _c.c_int64],
    "fork": [],
    "capget": [_c.c_void_p, _c.c_void_p],
    "capset": [_c.c_void_p, _c.c_void_p],
    "statfs": [_c.c_char_p, _c.c_void_p],
}


def error(err: int, what: str) -> OSError:
    """The ``OSError`` subclass for ``err``, its message naming ``what``."""
    return OSError(err, f"{what}: {os.strerror(err)}")


class Libc:
    """libc through ctypes; raises ``OSError`` on a negative return."""

    def __init__(self) -> None:
        self._cdll: Any = None

    def _lib(self) -> Any:
        if self._cdll is None:
            lib = ctypes.CDLL(None, use_errno=True)
            lib.syscall.restype = ctypes.c_long
            for name, types in _ARGTYPES.items():
                getattr(lib, name).argtypes = types
            self._cdll = lib
        return self._cdll

    def _invoke(self, func: str, args: tuple) -> tuple[int, int]:
        """(return value, errno) of the libc function ``func``."""
        ret = getattr(self._lib(), func)(*args)
        return ret, (ctypes.get_errno() if ret < 0 else 0)

    def _invoke_syscall(self, nr: int, name: str,
                        args: tuple) -> tuple[int, int]:
        """(return value, errno) of raw syscall ``nr`` (called ``name``)."""
        wide = [ctypes.c_long(a) if isinstance(a, int) else a
                for a in args]
        ret = self._lib().syscall(ctypes.c_long(nr), *wide)
        return ret, (ctypes.get_errno() if ret < 0 else 0)

    def call(self, func: str, *args: Any, what: str = "") -> int:
        """Call libc's ``func``; ``what`` names the step in an error."""
        ret, err = self._invoke(func, args)
        if ret < 0:
            raise error(err, what or func)
        return ret

    def syscall(self, name: str, *args: Any, what: str = "") -> int:
        """Make the raw syscall ``name`` (numbered by ``sysnr``)."""
        ret, err = self._invoke_syscall(sysnr.number(name), name, args)
        if ret < 0:
            raise error(err, what or name)
        return ret


_current: Libc = Libc()


def current() -> Libc:
    """The handle every wrapper of this package calls through."""
    return _current


@contextlib.contextmanager
def replaced(fake: Libc) -> Iterator[Libc]:
    """Route this package's calls to ``fake`` (a test double) for the
    duration of the block."""
    global _current
    saved, _current = _current, fake
    try:
        yield fake
    finally:
        _current = saved


def pointer(obj: Any) -> Any:
    """A pointer to a ctypes structure or buffer, for a syscall argument
    (a test double reads the structure back through ``.contents``)."""
    return ctypes.pointer(obj)
