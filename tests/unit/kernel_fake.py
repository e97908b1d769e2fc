"""A test double for virt.kernel's libc: records calls, fails on demand.

``FakeLibc`` replaces the two methods of ``libc.Libc`` that touch
ctypes, so everything above them -- the errno to ``OSError`` step, the
syscall-number lookup, the wrappers' argument order and call sequences
-- runs as in production, without root and without touching the
kernel. Install it with ``libc.replaced(FakeLibc())``.
"""

from __future__ import annotations

import os
from typing import Any

from pyct_driver.virt.kernel import libc


class FakeLibc(libc.Libc):
    """Records ``(name, args)`` for every libc function and raw syscall
    (syscalls by name, their number in ``numbers``); answers from
    ``results`` (name -> list of return values, used in order; default
    0, or for calls that return an fd a real one, of /dev/null, so the
    code under test may close it), ``errors`` (name -> errno every such
    call fails with) and ``fail_next`` (name -> errnos the next calls
    fail with, in order)."""

    # (bpf(2) returns an fd for BPF_PROG_LOAD, 5, only)
    FD_RETURNING = ("open_tree", "fsopen", "fsmount", "openat2", "bpf")

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, tuple]] = []
        self.numbers: list[int] = []
        self.results: dict[str, list[int]] = {}
        self.errors: dict[str, int] = {}
        self.fail_next: dict[str, list[int]] = {}
        self.fds: list[int] = []

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def _answer(self, name: str, args: tuple) -> tuple[int, int]:
        self.calls.append((name, args))
        if self.fail_next.get(name):
            return -1, self.fail_next[name].pop(0)
        if name in self.errors:
            return -1, self.errors[name]
        if self.results.get(name):
            return self.results[name].pop(0), 0
        if name in self.FD_RETURNING and (name != "bpf" or args[0] == 5):
            self.fds.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
            return self.fds[-1], 0
        return 0, 0

    def _invoke(self, func: str, args: tuple) -> tuple[int, int]:
        return self._answer(func, args)

    def _invoke_syscall(self, nr: int, name: str,
                        args: tuple) -> tuple[int, int]:
        self.numbers.append(nr)
        return self._answer(name, args)


def open_fds(fds: list[int]) -> list[int]:
    """Those of ``fds`` still open (the code under test leaked them)."""
    out = []
    for fd in fds:
        try:
            os.fstat(fd)
        except OSError:
            continue
        out.append(fd)
    return out


def contents(arg: Any) -> Any:
    """The structure a recorded pointer argument points at."""
    return arg.contents
