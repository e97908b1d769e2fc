"""Packaging, configuration and layering rules that keep pyct shippable."""

from __future__ import annotations

import ast
import configparser
import importlib
import os
import pathlib
import subprocess
import sys

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


def _imports(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {m for m in found if m.startswith("pyct_driver")}


def _modules(sub: str) -> list[pathlib.Path]:
    return sorted((PKG / sub).rglob("*.py"))


FORBIDDEN = {
    "api": ("pyct_driver.compute", "pyct_driver.virt"),
    "virt": ("pyct_driver.api", "pyct_driver.rpc", "pyct_driver.compute",
             "pyct_driver.db"),
    "db": ("pyct_driver.api", "pyct_driver.rpc", "pyct_driver.compute",
           "pyct_driver.virt"),
    "rpc": ("pyct_driver.api", "pyct_driver.compute", "pyct_driver.virt"),
    "metadata": ("pyct_driver.api", "pyct_driver.rpc", "pyct_driver.compute",
                 "pyct_driver.virt"),
    "console": ("pyct_driver.api", "pyct_driver.rpc", "pyct_driver.compute",
                "pyct_driver.virt"),
}


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layers_import_downward_only(layer):
    bad = []
    for path in _modules(layer):
        for mod in _imports(path):
            if mod.startswith(FORBIDDEN[layer]):
                bad.append(f"{path.relative_to(REPO)} imports {mod}")
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


def test_init_files_are_empty_and_modules_small():
    for path in PKG.rglob("*.py"):
        text = path.read_text()
        if path.name == "__init__.py":
            assert text == "", path
        else:
            assert len(text.splitlines()) <= 400, path
            assert ast.get_docstring(ast.parse(text)), f"{path}: docstring"


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
