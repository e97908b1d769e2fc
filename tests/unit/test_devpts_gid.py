"""devpts' gid option for guests whose id range lies past 2**31.

Linux before devpts' fs_parser (Debian 12's 6.1) reads ``gid=`` with
match_int and refuses such an id with EINVAL (seen in the v2 lane, which
boots Debian's 6.1 kernel): the mount is retried without it. Newer kernels
take the id, and it is always tried first.
"""

from pyct_driver.virt.process.guestinit import mounts


def test_gid_within_int_has_no_fallback():
    assert mounts.devpts_gid_options(5) == ["gid=5,"]
    assert mounts.devpts_gid_options(0x7FFFFFFF) == [f"gid={0x7FFFFFFF},"]


def test_gid_past_int_falls_back_to_no_gid_option():
    gid = 3457613824 + 5
    assert mounts.devpts_gid_options(gid) == [f"gid={gid},", ""]
