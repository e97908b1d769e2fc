"""No error in the compute service vanishes without a trace.

Every ``except Exception`` (or broader) handler in ``pyct_driver/compute``
re-raises or logs with the instance id (or, for host-wide work, the
host); ``contextlib.suppress(Exception)`` is not used there at all, since
it can log nothing. The check reads the source (AST), so new code keeps the
rule; a sample of each mistake shows the check catches it.
"""

from __future__ import annotations

import ast
import pathlib

import pyct_driver.compute

COMPUTE = pathlib.Path(pyct_driver.compute.__file__).parent
_BROAD = {"Exception", "BaseException"}
_LOG_LEVELS = {"debug", "info", "warning", "error", "exception",
               "critical"}


def _names(node: ast.expr | None) -> set[str]:
    if node is None:  # a bare except
        return {"BaseException"}
    items = node.elts if isinstance(node, ast.Tuple) else [node]
    return {ast.unparse(item).rsplit(".", 1)[-1] for item in items}


def _own_nodes(body: list[ast.stmt]):
    """Nodes of a handler's body, not of functions defined in it."""
    functions = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
    stack = [node for node in body if not isinstance(node, functions)]
    while stack:
        node = stack.pop()
        yield node
        stack += [child for child in ast.iter_child_nodes(node)
                  if not isinstance(child, functions)]


def _logs_an_id(node: ast.AST) -> bool:
    if not (isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _LOG_LEVELS
            and ast.unparse(node.func.value) == "LOG"):
        return False
    said = " ".join(ast.unparse(a) for a in [*node.args, *node.keywords])
    return "uuid" in said or "host" in said


def problems(source: str, where: str) -> list[str]:
    """Broad handlers that neither re-raise nor log an id, and suppress
    calls that swallow every error."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ExceptHandler) and \
                _names(node.type) & _BROAD:
            own = list(_own_nodes(node.body))
            if not any(isinstance(n, ast.Raise) or _logs_an_id(n)
                       for n in own):
                found.append(f"{where}:{node.lineno}: except "
                             f"{ast.unparse(node.type) if node.type else ''}"
                             " neither re-raises nor logs an id")
        if isinstance(node, ast.Call) and ast.unparse(node.func).endswith(
                "suppress") and {ast.unparse(a).rsplit(".", 1)[-1]
                                 for a in node.args} & _BROAD:
            found.append(f"{where}:{node.lineno}: suppress() swallows "
                         "every error without a log line")
    return found


def test_compute_handlers_log_or_reraise():
    found = []
    for path in sorted(COMPUTE.glob("*.py")):
        found += problems(path.read_text(), path.name)
    assert found == []


def test_the_check_catches_each_mistake():
    bad = '''
import contextlib
def a(uuid):
    try:
        go()
    except Exception:
        pass
def b(uuid):
    try:
        go()
    except (ValueError, Exception) as err:
        LOG.warning("failed: %s", err)
def c(uuid):
    with contextlib.suppress(Exception):
        go()
def d(uuid):
    try:
        go()
    except:
        def later():
            raise
def e(uuid):
    try:
        go()
    except BaseException:
        print(uuid)
'''
    lines = sorted(int(p.split(":")[1]) for p in problems(bad, "sample"))
    assert lines == [6, 11, 14, 19, 25]


def test_the_check_accepts_the_two_right_ways():
    good = '''
def a(uuid):
    try:
        go()
    except Exception as err:
        LOG.warning("build of %s failed: %s", uuid, err)
def b(inst):
    try:
        go()
    except Exception:
        LOG.exception("x", instance_uuid=inst["uuid"])
def c():
    try:
        go()
    except Exception:
        cleanup()
        raise
def d():
    try:
        go()
    except OSError:
        pass
'''
    assert problems(good, "sample") == []
