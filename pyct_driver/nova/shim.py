"""``pyct-nova-shim``: the one file that lets Nova load pyct's adapter.

Nova imports its driver as ``nova.virt.<compute_driver>``, so
``compute_driver = pyct.PyctDriver`` needs a module ``nova.virt.pyct``.
This command writes it beside Nova's own drivers (a new two-line file that
re-exports ``pyct_driver.nova.driver.PyctDriver``; no Nova file is
changed) and removes it again. Run ``pyct-nova-shim install`` after
installing ``pyct[nova]`` into nova-compute's environment, and again after
reinstalling Nova (which drops it).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile

MARK = "# written by pyct-nova-shim"
CONTENT = (f"{MARK}: compute_driver = pyct.PyctDriver loads pyct\n"
           "from pyct_driver.nova.driver import PyctDriver  # noqa: F401\n")


def shim_path() -> str:
    """Where ``nova.virt.pyct`` goes in this Python's Nova."""
    import nova.virt
    return os.path.join(os.path.dirname(nova.virt.__file__), "pyct.py")


def install() -> str:
    """Write the shim (idempotent); returns its path."""
    path = shim_path()
    try:
        with open(path) as f:
            if f.read() == CONTENT:
                return path
    except FileNotFoundError:
        pass
    # a file of its own: two installs at once (two checkouts sharing a
    # venv) must not write or rename each other's
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".pyct-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(CONTENT)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def remove() -> str:
    """Remove the shim if pyct wrote it; returns its path."""
    path = shim_path()
    try:
        with open(path) as f:
            ours = f.read().startswith(MARK)
    except FileNotFoundError:
        return path
    if ours:
        os.unlink(path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="pyct-nova-shim",
        description="Install or remove nova.virt.pyct, which makes "
                    "compute_driver = pyct.PyctDriver load pyct.")
    parser.add_argument("action", choices=["install", "remove", "path"])
    args = parser.parse_args(argv)
    action = {"install": install, "remove": remove, "path": shim_path}
    print(action[args.action]())
    return 0


if __name__ == "__main__":
    sys.exit(main())
