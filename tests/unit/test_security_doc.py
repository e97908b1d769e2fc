"""SECURITY.md's list of privileged operations names real modules, and
the oslo.privsep dependency it explains away stays gone."""

from __future__ import annotations

import pathlib
import re

REPO = pathlib.Path(__file__).resolve().parents[2]


def _privileged_section() -> str:
    text = (REPO / "SECURITY.md").read_text()
    start = text.index("## Privileged operations")
    return text[start:text.index("\n## ", start + 1)]


def test_every_module_in_the_privileged_table_exists():
    section = _privileged_section()
    named = set()
    for cell in re.findall(r"^\|[^|]*\| ([^|]*) \|", section, re.M):
        prefix = ""
        for path in re.findall(r"`([a-z_/0-9.-]+\.(?:py|conf|sh))`", cell):
            # "virt/cgroups/v1.py, `v2.py`": a bare name is the previous
            # one's sibling
            if "/" in path:
                prefix = path.rsplit("/", 1)[0] + "/"
            else:
                path = prefix + path
            named.add(path)
    assert len(named) > 30, named
    missing = [p for p in sorted(named)
               if not (REPO / "pyct_driver" / p).exists()
               and not (REPO / p).exists()]
    assert not missing, missing


def test_oslo_privsep_is_neither_required_nor_imported():
    assert "privsep" not in (REPO / "requirements.txt").read_text()
    assert "privsep" not in (REPO / "setup.cfg").read_text()
    users = [str(p) for p in (REPO / "pyct_driver").rglob("*.py")
             if "privsep" in p.read_text()]
    assert not users, users
