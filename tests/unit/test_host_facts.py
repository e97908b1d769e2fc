"""What a compute host reports for os-hypervisors besides capacity."""

from __future__ import annotations

from pyct_driver.compute import host_facts


def test_kernel_release_as_novas_integer():
    assert host_facts.kernel_version("5.10.0-28-amd64") == 5010000
    assert host_facts.kernel_version("6.1.55") == 6001055
    assert host_facts.kernel_version("4.19") == 4019000
    assert host_facts.kernel_version() > 3_000_000   # this host's


def test_uptime_in_uptime1_words(tmp_path):
    (tmp_path / "uptime").write_text("266523.41 1000.00\n")
    (tmp_path / "loadavg").write_text("0.52 0.58 0.59 1/300 4242\n")
    text = host_facts.uptime_text(str(tmp_path), now=0)
    assert text == " 00:00:00 up 3 days,  2:02,  load average: 0.52, " \
        "0.58, 0.59"
    (tmp_path / "uptime").write_text("95.0 1.0\n")
    assert host_facts.uptime_text(str(tmp_path), now=0).startswith(
        " 00:00:00 up 1 min,")
    assert host_facts.uptime_text(str(tmp_path / "none")) is None
    assert host_facts.uptime_text().startswith(" ")    # this host's


def test_host_ip_configured_or_detected():
    assert host_facts.host_ip("198.51.100.7") == "198.51.100.7"
    assert host_facts.host_ip(None)
