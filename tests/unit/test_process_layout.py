"""virt/process/ is split by the process a line runs in; these tests hold it.

``caller/`` runs in pyct-compute (many threads), ``forkserver/`` in the
launcher daemon (one thread, forks guests), ``guestinit/`` in the children
it forks before they exec. A fork copies only the calling thread, so a
thread started by an import in the fork server would leave its locks held
in every guest init; the fork server and guest-init code must therefore
import nothing that starts threads, and nothing of the compute side. The
modules left at the top of virt/process/ are the ones two processes share.
"""

import ast
import pathlib
import subprocess
import sys

PROCESS = (pathlib.Path(__file__).resolve().parents[2]
           / "pyct_driver" / "virt" / "process")
BASE = "pyct_driver.virt.process"
SHARED = {"spec.py", "guest.py"}
# Which of the other subpackages each may not import.
FORBIDDEN = {
    "guestinit": ("caller", "forkserver"),
    "forkserver": ("caller",),
    "caller": ("forkserver",),
    "": ("caller", "forkserver"),   # the shared modules at the top
}
# Modules that start threads when used, or hold state a fork must not copy
# mid-use (pools, connections, log handlers with locks).
THREADED = ("concurrent", "asyncio", "multiprocessing",
            "oslo_messaging", "oslo_log", "oslo_config", "oslo_concurrency",
            "oslo_privsep", "sqlalchemy", "eventlet", "futurist",
            "pyct_driver.compute", "pyct_driver.rpc", "pyct_driver.db",
            "pyct_driver.api", "pyct_driver.virt.container",
            f"{BASE}.caller")


def _imports(path: pathlib.Path) -> set[str]:
    """Every module a file names in an import; relative imports as '.'."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                found.add(".")
                continue
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def _layout_violations(root: pathlib.Path) -> list[str]:
    bad = []
    for sub, others in FORBIDDEN.items():
        files = (sorted(root.glob("*.py")) if not sub
                 else sorted((root / sub).glob("*.py")))
        for path in files:
            for mod in _imports(path):
                if mod == ".":
                    bad.append(f"{sub}/{path.name}: relative import")
                for other in others:
                    if mod.startswith(f"{BASE}.{other}"):
                        bad.append(f"{sub}/{path.name} imports {mod}")
    return bad


def test_subpackages_import_along_the_fork_only():
    assert _layout_violations(PROCESS) == []


def test_the_layout_check_can_fail(tmp_path):
    for sub in ("caller", "forkserver", "guestinit"):
        (tmp_path / sub).mkdir()
    (tmp_path / "guestinit" / "bad.py").write_text(
        f"from {BASE}.forkserver import launcher\n")
    (tmp_path / "forkserver" / "bad.py").write_text(
        f"import {BASE}.caller.client\nfrom . import x\n")
    assert sorted(_layout_violations(tmp_path)) == [
        "forkserver/bad.py imports pyct_driver.virt.process.caller.client",
        "forkserver/bad.py: relative import",
        "guestinit/bad.py imports pyct_driver.virt.process.forkserver",
        "guestinit/bad.py imports "
        "pyct_driver.virt.process.forkserver.launcher"]


def test_every_module_says_which_process_runs_it():
    top = {p.name for p in PROCESS.glob("*.py")} - {"__init__.py"}
    assert top <= SHARED, f"pick a process for {sorted(top - SHARED)}"
    for sub in ("caller", "forkserver", "guestinit"):
        for path in (PROCESS / sub).glob("*.py"):
            if path.name == "__init__.py":
                continue
            doc = ast.get_docstring(ast.parse(path.read_text()))
            # the summary line, then the paragraph that names the process
            assert doc.split("\n\n")[1].startswith("Runs in "), path


_PROBE = """
import importlib, pkgutil, sys, threading
before = set(sys.modules)   # what site (.pth files) loaded on its own
for sub in ("forkserver", "guestinit"):
    pkg = importlib.import_module("%s." + sub)
    for info in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(pkg.__name__ + "." + info.name)
print(threading.active_count())
print(" ".join(sorted(set(sys.modules) - before)))
""" % BASE


def _loaded(threaded: tuple[str, ...], modules: list[str]) -> list[str]:
    return [m for m in modules
            if any(m == t or m.startswith(t + ".") for t in threaded)]


def test_fork_side_imports_start_no_thread():
    """A fresh interpreter (the fork server's starting point) imports
    every forkserver and guestinit module: still one thread, and none of
    the modules that start threads or hold pools is loaded."""
    out = subprocess.run([sys.executable, "-c", _PROBE], check=True,
                         capture_output=True, text=True,
                         cwd=PROCESS.parents[2]).stdout.split("\n")
    assert out[0] == "1"
    modules = out[1].split()
    assert f"{BASE}.forkserver.launcher" in modules
    assert f"{BASE}.guestinit.nsinit" in modules
    assert _loaded(THREADED, modules) == []
    third_party = sorted({m.split(".")[0] for m in modules}
                         - set(sys.stdlib_module_names) - {"pyct_driver"})
    assert third_party == []


def test_the_thread_check_can_fail():
    assert _loaded(THREADED, ["json", "concurrent.futures",
                              "sqlalchemy.engine", "queue_x"]) == [
        "concurrent.futures", "sqlalchemy.engine"]
