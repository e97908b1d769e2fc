"""devpts' gid option for guests whose id range lies past 2**31.

Linux before devpts' fs_parser (Debian 12's 6.1) reads ``gid=`` with
match_int: a range start such as 3457613824 + 5 is refused with EINVAL,
its signed 32-bit spelling is turned back into the same gid_t. The v2 lane
(Debian's 6.1 kernel) boots such guests; these pin the spelling.
"""

import ctypes

from pyct_driver.virt.process import mounts


def test_small_gid_has_one_form():
    assert mounts.devpts_gid_forms(5) == ["5"]
    assert mounts.devpts_gid_forms(0x7FFFFFFF) == [str(0x7FFFFFFF)]


def test_large_gid_also_as_signed_int_that_means_the_same_gid_t():
    gid = 3457613824 + 5
    plain, signed = mounts.devpts_gid_forms(gid)
    assert plain == str(gid)
    assert int(signed) < 0
    # what the kernel does: int option -> gid_t (u32)
    assert ctypes.c_uint32(int(signed)).value == gid
