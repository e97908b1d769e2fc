"""Packaging, configuration and layering rules that keep pyct shippable."""

from __future__ import annotations

import ast
import configparser
import importlib
import io
import os
import pathlib
import subprocess
import sys
import tokenize

import pytest
from stevedore import driver as stevedore_driver

REPO = pathlib.Path(__file__).resolve().parents[2]
PKG = REPO / "pyct_driver"


def _entry_points() -> list[tuple[str, str, str]]:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    out = []
    for group, text in cfg["entry_points"].items():
        for line in text.strip().splitlines():
            name, _, target = (p.strip() for p in line.partition("="))
            out.append((group, name, target))
    return out


@pytest.mark.parametrize("group,name,target", _entry_points())
def test_every_declared_entry_point_loads(group, name, target):
    module, _, attr = target.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    assert callable(obj)


def test_virt_drivers_load_through_stevedore():
    from pyct_driver import plugins
    names = [n for g, n, _ in _entry_points()
             if g == plugins.VIRT_NAMESPACE]
    assert set(names) == {"fake", "container"}
    mgr = stevedore_driver.DriverManager(plugins.VIRT_NAMESPACE, "fake",
                                         invoke_on_load=False)
    from pyct_driver.virt.fake import FakeDriver
    assert mgr.driver is FakeDriver


def test_unknown_virt_driver_is_a_clear_error():
    from pyct_driver import conf, exception, plugins
    with pytest.raises(exception.InvalidInput, match="unknown virt_driver"):
        plugins.load_virt_driver("nope", conf.CONF)


def _this_checkout() -> dict:
    """The environment that makes a console script import this checkout's
    pyct_driver (not whatever the venv's editable install points at)."""
    return {**os.environ, "PYTHONPATH": str(REPO)}


def test_sample_config_is_current(tmp_path):
    out = tmp_path / "pyct.conf.sample"
    gen = pathlib.Path(sys.executable).parent / "oslo-config-generator"
    subprocess.run([str(gen), "--config-file",
                    str(REPO / "etc/pyct/pyct-config-generator.conf"),
                    "--output-file", str(out)], check=True, cwd=REPO,
                   capture_output=True, env=_this_checkout())
    assert out.read_text() == (REPO / "etc/pyct/pyct.conf.sample"
                               ).read_text(), (
        "etc/pyct/pyct.conf.sample is stale: run `make sample-config`")


def test_policy_sample_is_current(tmp_path):
    out = tmp_path / "policy.yaml.sample"
    gen = pathlib.Path(sys.executable).parent / "oslopolicy-sample-generator"
    subprocess.run([str(gen), "--config-file",
                    str(REPO / "etc/pyct/pyct-policy-generator.conf"),
                    "--output-file", str(out)], check=True, cwd=REPO,
                   capture_output=True, env=_this_checkout())
    assert out.read_text() == (REPO / "etc/pyct/policy.yaml.sample"
                               ).read_text(), (
        "etc/pyct/policy.yaml.sample is stale: run `make sample-config`")


def test_every_option_has_help():
    from pyct_driver import conf
    for group, opts in conf.list_opts():
        for opt in opts:
            assert opt.help and len(opt.help) > 10, (group, opt.name)


def _package_of(path: pathlib.Path) -> list[str]:
    """The dotted package ``path`` (a module under pyct_driver) is in."""
    parts = ["pyct_driver", *path.relative_to(PKG).with_suffix("").parts]
    return parts[:-1]  # a package's __init__ is in the package itself


def _all_imports(path: pathlib.Path, text: str | None = None) -> set[str]:
    """Every module ``path`` imports (absolute names; a relative import
    such as ``from . import x`` or ``from ..rpc import y`` resolved
    against the module's own package), names imported from a module
    included as ``module.name``."""
    tree = ast.parse(path.read_text() if text is None else text)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module
            if node.level:
                package = _package_of(path)
                base = package[:len(package) - node.level + 1]
                module = ".".join(base + ([module] if module else []))
            if module:
                found.add(module)
                found.update(f"{module}.{a.name}" for a in node.names)
    return found


def _imports(path: pathlib.Path, text: str | None = None) -> set[str]:
    return {m for m in _all_imports(path, text)
            if m == "pyct_driver" or m.startswith("pyct_driver.")}


def _modules(sub: str) -> list[pathlib.Path]:
    return sorted((PKG / sub).rglob("*.py"))


def test_relative_imports_are_resolved():
    path = PKG / "virt" / "cgroups" / "example.py"
    text = ("from . import base\nfrom .. import kernel\n"
            "from ..network import names\nfrom ... import exception\n")
    assert _imports(path, text) >= {
        "pyct_driver.virt.cgroups.base", "pyct_driver.virt.kernel",
        "pyct_driver.virt.network.names", "pyct_driver.exception"}
    init = PKG / "virt" / "kernel" / "__init__.py"
    assert "pyct_driver.virt.kernel.libc" in _imports(
        init, "from . import libc\n")


_LAYERS = ("pyct_driver.api", "pyct_driver.rpc", "pyct_driver.compute",
           "pyct_driver.db", "pyct_driver.virt", "pyct_driver.cmd",
           "pyct_driver.metadata", "pyct_driver.console",
           "pyct_driver.notifications")
FORBIDDEN = {
    "api": ("pyct_driver.compute", "pyct_driver.virt", "pyct_driver.cmd"),
    "compute": ("pyct_driver.api", "pyct_driver.cmd"),
    "virt": ("pyct_driver.api", "pyct_driver.rpc", "pyct_driver.compute",
             "pyct_driver.db", "pyct_driver.cmd"),
    "db": ("pyct_driver.api", "pyct_driver.rpc", "pyct_driver.compute",
           "pyct_driver.virt", "pyct_driver.cmd"),
    "rpc": ("pyct_driver.api", "pyct_driver.compute", "pyct_driver.virt",
            "pyct_driver.cmd"),
    "metadata": ("pyct_driver.api", "pyct_driver.rpc", "pyct_driver.compute",
                 "pyct_driver.virt", "pyct_driver.cmd"),
    "console": ("pyct_driver.api", "pyct_driver.rpc", "pyct_driver.compute",
                "pyct_driver.virt", "pyct_driver.cmd"),
    # cmd/* are the composition roots: they may import every layer, but
    # no layer imports them back (the test below).
    "cmd": (),
}


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layers_import_downward_only(layer):
    bad = []
    for path in _modules(layer):
        for mod in _imports(path):
            if FORBIDDEN[layer] and mod.startswith(FORBIDDEN[layer]):
                bad.append(f"{path.relative_to(REPO)} imports {mod}")
    assert not bad, bad


def test_nothing_imports_the_console_scripts():
    bad = [f"{path.relative_to(REPO)} imports {mod}"
           for path in PKG.rglob("*.py")
           if not path.is_relative_to(PKG / "cmd")
           for mod in _imports(path) if mod.startswith("pyct_driver.cmd")]
    assert not bad, bad


# The root's small leaf modules (conf, context, exception, states, ...)
# may be used anywhere, so they import no layer; plugins only checks the
# virt driver interface it loads.
ROOT_MAY_IMPORT = ("pyct_driver.virt.base",)


def test_root_leaf_modules_import_no_layer():
    bad = [f"{path.relative_to(REPO)} imports {mod}"
           for path in sorted(PKG.glob("*.py"))
           for mod in _imports(path)
           if mod.startswith(_LAYERS) and not mod.startswith(ROOT_MAY_IMPORT)]
    assert not bad, bad


def test_virt_subpackages_do_not_import_each_other():
    subs = ("cgroups", "process", "rootfs", "network")
    bad = []
    for sub in subs:
        for path in _modules(f"virt/{sub}"):
            for mod in _imports(path):
                for other in subs:
                    if other != sub and mod.startswith(
                            f"pyct_driver.virt.{other}"):
                        bad.append(f"{path.relative_to(REPO)} -> {mod}")
    assert not bad, bad


def test_only_virt_kernel_imports_ctypes():
    kernel = PKG / "virt" / "kernel"
    bad = [str(path.relative_to(REPO)) for path in sorted(PKG.rglob("*.py"))
           if not path.is_relative_to(kernel)
           and any(m == "ctypes" or m.startswith("ctypes.")
                   for m in _all_imports(path))]
    assert not bad, bad


def test_virt_kernel_imports_nothing_of_pyct_but_exception():
    allowed = ("pyct_driver.exception", "pyct_driver.virt.kernel")
    bad = [f"{path.relative_to(REPO)} imports {mod}"
           for path in _modules("virt/kernel") for mod in _imports(path)
           if mod != "pyct_driver" and not mod.startswith(allowed)]
    assert not bad, bad
    # "from pyct_driver import exception" is the one root import
    roots = {mod for path in _modules("virt/kernel")
             for mod in _imports(path) if mod.count(".") == 1}
    assert roots <= {"pyct_driver.exception"}, roots


def _top_level_imports(path: pathlib.Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and \
                not node.level:
            found.add(node.module.split(".")[0])
    return found


def test_only_the_nova_adapter_imports_nova():
    """pyct without Nova installed works: Nova is imported only in
    pyct_driver/nova, and nothing else in pyct imports that adapter."""
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        inside = (PKG / "nova") in path.parents
        if not inside and "nova" in _top_level_imports(path):
            bad.append(f"{path.relative_to(REPO)} imports nova")
        if not inside and any(m.startswith("pyct_driver.nova")
                              for m in _imports(path)):
            bad.append(f"{path.relative_to(REPO)} imports pyct_driver.nova")
    assert not bad, bad
    assert "nova" in _top_level_imports(PKG / "nova" / "driver.py")


# "Aim for modules of at most 400 lines", counted in logical lines of code
# (tokenize's NEWLINE tokens less docstrings): comments, blank lines and
# docstring prose are free, and a statement split over lines counts once,
# so neither reflowing docstrings nor cramming long lines moves the count.
# Across pyct_driver 1.84 physical lines make one logical line, so 400
# physical lines are about 217 logical ones: the limit is 220.
MAX_LOGICAL_LINES = 220
# Modules already over the limit, at their size when the count changed to
# logical lines; they may shrink, not grow (the kernel-seam and process
# split work of issue 13 is what brings them under).
OVER_LOGICAL_LIMIT = {
    "virt/container.py": 271,
    "virt/network/dnsforward.py": 269,
    "virt/process/forkserver/launcher.py": 267,
    "virt/rootfs/unpack.py": 262,
    "virt/process/guestinit/nsinit.py": 224,
}
MAX_LINE_LENGTH = 79   # OpenStack's (pycodestyle's) limit


def logical_lines(text: str) -> int:
    """Logical lines of code in ``text``: statements, not docstrings."""
    tokens = tokenize.generate_tokens(io.StringIO(text).readline)
    statements = sum(1 for t in tokens if t.type == tokenize.NEWLINE)
    docstrings = sum(1 for node in ast.walk(ast.parse(text))
                     if isinstance(node, ast.Expr)
                     and isinstance(node.value, ast.Constant)
                     and isinstance(node.value.value, str))
    return statements - docstrings


def test_logical_line_count_ignores_prose_and_layout():
    dense = 'x = [1, 2, 3]\ny = {"a": x}\n'
    airy = ('"""Doc\n\nstring."""\n# why\n\nx = [\n    1,\n    2,\n'
            '    3,\n]\n\n\ny = {\n    "a": x,\n}\n')
    assert logical_lines(dense) == logical_lines(airy) == 2
    assert logical_lines('def f():\n    """Doc."""\n    return 1\n') == 2


def test_init_files_are_empty_and_modules_small():
    too_big = []
    for path in PKG.rglob("*.py"):
        text = path.read_text()
        if path.name == "__init__.py":
            assert text == "", path
            continue
        assert ast.get_docstring(ast.parse(text)), f"{path}: docstring"
        name = str(path.relative_to(PKG))
        limit = max(MAX_LOGICAL_LINES, OVER_LOGICAL_LIMIT.get(name, 0))
        if logical_lines(text) > limit:
            too_big.append(f"{name}: {logical_lines(text)} > {limit}")
    assert not too_big, too_big


def test_lines_fit_79_columns():
    long = [f"{path.relative_to(REPO)}:{n}"
            for path in PKG.rglob("*.py")
            for n, line in enumerate(path.read_text().splitlines(), 1)
            if len(line) > MAX_LINE_LENGTH]
    assert not long, long


def test_console_scripts_never_import_eventlet():
    """oslo.service installs eventlet and futurist imports whatever is
    installed; pyct's processes must not load it (nor dnspython, which it
    drags in with eight CryptographyDeprecationWarnings)."""
    modules = sorted({t.partition(":")[0] for g, _, t in _entry_points()
                      if g == "console_scripts"})
    code = ("import sys\n"
            + "".join(f"import {m}\n" for m in modules)
            + "from pyct_driver.compute import service\n"
            "print(sorted(m for m, v in sys.modules.items() if v is not None"
            " and m.split('.')[0] in ('eventlet', 'dns', 'greenlet')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, cwd=REPO)
    assert (out.returncode, out.stdout, out.stderr) == (0, "[]\n", "")
