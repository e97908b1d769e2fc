"""CRIU detection (``virt.criu``): detected, never assumed. A stand-in
``criu`` on a PATH of its own passes or fails ``criu check``; no ``criu``
at all is "not available" too; a failing dump is a VirtError carrying
criu's own last log line."""

from __future__ import annotations

import pytest

from pyct_driver import exception
from pyct_driver.virt.criu import Criu


def stand_in(tmp_path, check_rc: int, dump_rc: int = 1) -> str:
    script = tmp_path / "criu"
    script.write_text(
        "#!/bin/sh\n"
        f"case \"$1\" in\n"
        f"check) echo 'check output' >&2; exit {check_rc};;\n"
        "dump) d=''; while [ $# -gt 0 ]; do [ \"$1\" = -D ] && d=$2; "
        "shift; done; echo 'Error (cr-dump.c:1): seize failed' "
        f"> \"$d/dump.log\"; exit {dump_rc};;\n"
        "esac\nexit 2\n")
    script.chmod(0o755)
    return str(tmp_path)


def test_passing_check_selects_criu(tmp_path):
    criu = Criu(path=stand_in(tmp_path, 0))
    assert criu.available and criu.reason == "criu check passed"
    assert criu.binary == str(tmp_path / "criu")


def test_failing_check_is_not_available(tmp_path):
    criu = Criu(path=stand_in(tmp_path, 1))
    assert not criu.available
    assert criu.reason == "criu check failed: check output"


def test_missing_criu_is_not_available(tmp_path):
    criu = Criu(path=str(tmp_path))  # an empty PATH directory
    assert not criu.available and criu.binary is None
    assert criu.reason == "criu is not installed"
    with pytest.raises(exception.VirtError):
        criu.dump(1, str(tmp_path / "ckpt"))


def test_failing_dump_reports_criu_log(tmp_path):
    criu = Criu(path=stand_in(tmp_path, 0))
    with pytest.raises(exception.VirtError) as err:
        criu.dump(12345, str(tmp_path / "ckpt"))
    assert "criu dump failed (1)" in err.value.message
    assert "seize failed" in err.value.message
