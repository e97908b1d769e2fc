"""Waiting on descriptors past 1024: the fork server holds a few per
guest, so with hundreds of guests its numbers pass select()'s limit
(issue #16's "filedescriptor out of range in select()")."""

import ast
import contextlib
import os
import pathlib
import resource

import pytest

from pyct_driver.virt.kernel import files

PKG = pathlib.Path(__file__).resolve().parents[2] / "pyct_driver"


@pytest.fixture
def high_fd_pipe():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 4096), hard))
    r, w = os.pipe()
    high_r, high_w = os.dup2(r, 3000), os.dup2(w, 3001)
    os.close(r)
    os.close(w)
    yield high_r, high_w
    for fd in (high_r, high_w):
        with contextlib.suppress(OSError):  # the test may close one
            os.close(fd)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_descriptor_past_1024_is_waited_on(high_fd_pipe):
    r, w = high_fd_pipe
    assert files.wait_readable([r], 0.05) == []
    os.write(w, b"x")
    assert files.wait_readable([r], 1.0) == [r]
    os.read(r, 1)
    os.close(w)  # EOF: readable too
    assert files.wait_readable([r], 1.0) == [r]


def test_no_module_calls_select_select():
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and node.attr == "select"
                    and isinstance(node.value, ast.Name)
                    and node.value.id == "select"):
                bad.append(f"{path.relative_to(PKG)}:{node.lineno}")
    assert not bad, bad
