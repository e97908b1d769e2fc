"""Reading the cgroup mount's type and superblock options from mountinfo.

detect.py picks v2 from the type and warns when a cgroup2 mount lacks
``nsdelegate``: without that delegation boundary a privileged guest (host
root in its own cgroup namespace) could write its group's limit files. The
v2 lane's VM mounts it as systemd does, with nsdelegate.
"""

from pyct_driver.virt.cgroups import detect

SYSTEMD_V2 = ("35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime "
              "shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot")
PLAIN_V2 = "35 24 0:30 / /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw"
HYBRID = ("30 24 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n"
          "31 30 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,"
          "nsdelegate")


def test_systemd_mount_has_nsdelegate():
    fstype, opts = detect.mount_at(SYSTEMD_V2, "/sys/fs/cgroup")
    assert fstype == "cgroup2" and "nsdelegate" in opts


def test_plain_mount_lacks_it():
    fstype, opts = detect.mount_at(PLAIN_V2, "/sys/fs/cgroup")
    assert fstype == "cgroup2" and "nsdelegate" not in opts


def test_exact_target_only_and_last_mount_wins():
    assert detect.mount_at(HYBRID, "/sys/fs/cgroup")[0] == "tmpfs"
    assert detect.mount_at(HYBRID, "/sys/fs") is None
    both = PLAIN_V2 + "\n" + SYSTEMD_V2
    assert "nsdelegate" in detect.mount_at(both, "/sys/fs/cgroup")[1]
