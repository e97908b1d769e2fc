"""The Debian image recipe and the guest's cgroup mount plan, without root:
mirror discovery, the cache key, the tree customisation, and which cgroup
hierarchies a guest gets (and which of them writable).
"""

from __future__ import annotations

import os

from pyct_driver.virt.process.guestinit import cgroupfs
from pyct_driver.virt.rootfs import debian, debian_agent

V1_HOST = """\
9:name=systemd:/
8:pids:/
4:memory:/
2:cpu,cpuacct:/
1:name=elogind:/
0::/
"""


def test_v1_plan_tracker_writable_controllers_read_only():
    v1, unified = cgroupfs.hierarchies(V1_HOST)
    assert unified
    assert cgroupfs.mount_plan(v1) == [
        ("cpu,cpuacct", "cpu,cpuacct", False),
        ("memory", "memory", False),
        ("pids", "pids", False),
        ("systemd", "none,name=systemd", True),
    ]


def test_pure_v2_has_no_v1_hierarchies():
    v1, unified = cgroupfs.hierarchies("0::/\n")
    assert v1 == [] and unified


def test_recipe_hash_tracks_the_recipe(monkeypatch):
    first = debian.recipe_hash("bookworm")
    assert first == debian.recipe_hash("bookworm")
    assert first != debian.recipe_hash("trixie")
    monkeypatch.setattr(debian, "MASK", debian.MASK + ("x.service",))
    assert debian.recipe_hash("bookworm") != first
    assert debian.cached_path("bookworm", "/c").startswith(
        "/c/debian-bookworm-")


def test_host_mirror_reads_deb822_sources(tmp_path, monkeypatch):
    (tmp_path / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\n"
        "Suites: bookworm-security\nComponents: main\n\n"
        "Types: deb\nURIs: http://mirror.example/debian/\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n")
    real_glob = debian.glob.glob

    def fake_glob(pattern):
        if pattern.endswith("*.sources"):
            return [str(tmp_path / "debian.sources")]
        if pattern.startswith("/etc/apt"):
            return []
        return real_glob(pattern)

    monkeypatch.setattr(debian.glob, "glob", fake_glob)
    assert debian.host_mirror("bookworm") == "http://mirror.example/debian"
    assert debian.host_mirror("sid") in (debian.FALLBACK_MIRROR,
                                         "http://mirror.example/debian")


def test_customize_removes_build_identity_and_installs_agent(tmp_path):
    root = tmp_path
    for rel in ("etc/ssh/ssh_host_rsa_key", "etc/hostname",
                "etc/machine-id", "var/lib/dbus/machine-id"):
        os.makedirs(root / os.path.dirname(rel), exist_ok=True)
        (root / rel).write_text("build-host\n")
    os.makedirs(root / "etc/systemd/system")
    debian.customize(str(root))
    assert not (root / "etc/ssh/ssh_host_rsa_key").exists()
    assert not (root / "etc/hostname").exists()
    assert (root / "etc/machine-id").read_text() == ""
    assert os.readlink(root / "var/lib/dbus/machine-id") == "/etc/machine-id"
    units = root / "etc/systemd/system"
    for unit in debian.MASK:
        assert os.readlink(units / unit) == "/dev/null"
    assert os.readlink(units / "default.target").endswith(
        "multi-user.target")
    agent = root / debian_agent.AGENT_PATH
    assert os.stat(agent).st_mode & 0o777 == 0o755
    assert (units / "multi-user.target.wants" /
            debian_agent.AGENT_UNIT).is_symlink()
    unit = (units / debian_agent.AGENT_UNIT).read_text()
    assert "Before=ssh.service" in unit
    sshd = (root / "etc/ssh/sshd_config.d/50-pyct.conf").read_text()
    assert "PermitRootLogin prohibit-password" in sshd
    assert "UseDNS no" in sshd
