"""The host sysctls pyct asks for: the shipped file and the driver's check
agree, and the check names what is too low."""

from __future__ import annotations

import os

from pyct_driver.virt import host_resources

CONF = os.path.join(os.path.dirname(__file__), "..", "..", "etc",
                    "sysctl.d", "60-pyct.conf")


def _conf() -> dict[str, int]:
    out = {}
    with open(CONF) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                key, _, value = line.partition("=")
                out[key.strip()] = int(value)
    return out


def test_shipped_sysctl_file_matches_the_drivers_check():
    assert _conf() == host_resources.HOST_SYSCTLS


def test_warnings_name_each_low_value(tmp_path):
    for key, value in (("fs.file-max", "2466252"), ("kernel.pty.max", "4096"),
                       ("kernel.pid_max", str(1 << 22))):
        path = tmp_path.joinpath(*key.split("."))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value + "\n")
    warnings = host_resources.tuning_warnings(str(tmp_path))
    assert len(warnings) == 2
    assert warnings[0].startswith("fs.file-max is 2466252, below ")
    assert warnings[1].startswith("kernel.pty.max is 4096, below 1048576")
    tmp_path.joinpath("kernel", "pty", "max").write_text("1048576\n")
    tmp_path.joinpath("fs", "file-max").write_text(f"{(1 << 63) - 1}\n")
    assert host_resources.tuning_warnings(str(tmp_path)) == []
