"""The migrations ship in the wheel and run from an installed copy.

Builds a wheel from a copy of the source tree with the project's own
setup.cfg (pbr), installs it into a throw-away venv and runs
``pyct_driver.db.migration.upgrade`` from a directory outside any source
tree against a temporary SQLite file. This is what ``pyct-manage db sync``
does on a host installed from a package.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap

REPO = pathlib.Path(__file__).resolve().parents[2]
SHIPPED = ("pyct_driver", "migrations", "etc", "setup.cfg", "setup.py",
           "pyproject.toml", "requirements.txt", "README.md", "README.rst",
           "LICENSE")

PROBE = textwrap.dedent("""
    import json, sys
    import pyct_driver
    from pyct_driver.db import migration
    url = sys.argv[1]
    before = migration.current(url)
    migration.upgrade(url)
    print(json.dumps({"package": pyct_driver.__file__,
                      "migrations": migration.migrations_dir(),
                      "before": before, "after": migration.current(url),
                      "head": migration.head()}))
""")


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                          **kw)
    assert done.returncode == 0, (
        f"{' '.join(cmd[:4])} ... failed:\n{done.stdout[-2000:]}\n"
        f"{done.stderr[-3000:]}")
    return done


def test_setup_cfg_ships_the_migrations():
    text = (REPO / "setup.cfg").read_text()
    assert re.search(r"share/pyct/migrations\s*=\s*migrations/\*", text), (
        "setup.cfg [files] data_files must carry "
        "'share/pyct/migrations = migrations/*' (pbr copies the folder "
        "recursively, versions/ included)")


def test_installed_wheel_runs_migrations_outside_the_tree(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in SHIPPED:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        elif path.exists():
            shutil.copy2(path, src / name)
    # the copy has no git history to take a version from
    env = dict(os.environ, PBR_VERSION="0.0.1")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps",
          "--no-build-isolation", "--no-index", "-q", "-w",
          str(tmp_path / "dist"), str(src)], env=env, cwd=tmp_path)
    [wheel] = (tmp_path / "dist").glob("pyct-*.whl")

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip",
          "--system-site-packages", str(venv)])
    vpy = venv / "bin" / "python"
    vsite = pathlib.Path(_run([str(vpy), "-c",
                               "import sysconfig; print(sysconfig"
                               ".get_path('purelib'))"]).stdout.strip())
    # dependencies come from the test venv; appended after the new venv's
    # own site-packages, and its .pth files (an editable pyct) not run
    (vsite / "zz_pyct_test_deps.pth").write_text(
        sysconfig.get_path("purelib") + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(vpy), "install",
          "-q", "--no-deps", "--no-index", str(wheel)])

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    url = f"sqlite:///{tmp_path / 'installed.sqlite'}"
    out = _run([str(vpy), "-I", "-c", PROBE, url], cwd=elsewhere,
               env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["package"].startswith(str(venv)), result
    assert result["migrations"].startswith(str(venv)), result
    assert result["migrations"].endswith("share/pyct/migrations"), result
    assert result["before"] is None
    assert result["after"] == result["head"] is not None
