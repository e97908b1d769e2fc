"""``openstack server set --password`` and diagnostics on a real guest.

One all-in-one with the container driver and one busybox guest (m1.tiny;
busybox has no ``chpasswd``, so the guest's own ``sed`` writes its own
``/etc/shadow``). After the CLI call the guest's root entry, read inside
the guest with ``guest_exec``, holds a SHA-512 hash of the new password;
the host never opened the guest's file. A locked server refuses the
member's password change (409) and the entry stays. Diagnostics (admin,
2.48) show the guest's CPU time (non-zero: the guest ran a shell) and its
memory; its one NIC's counters (from the host end of its veth) agree
with the guest's own eth0 after it pinged its gateway. Everything is
torn down by the fixture, also on failure.
"""

from __future__ import annotations

import warnings

from tests.privileged import e2e_fixtures
from tests.privileged.test_debian_ssh import free_pool


def _root_entry(env, uuid: str) -> str:
    shadow = env.exec(uuid, ["cat", "/etc/shadow"]).stdout
    return next(line for line in shadow.splitlines()
                if line.startswith("root:"))


def _guest_tx(env, uuid: str) -> int:
    return int(env.exec(uuid, ["cat", "/sys/class/net/eth0/statistics/"
                                      "tx_bytes"]).stdout)


def _matches(password: str, hashed: str) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt
    return crypt.crypt(password, hashed) == hashed


def test_root_password_and_diagnostics():
    extra = {"network": {"pool_cidr": free_pool()}}
    with e2e_fixtures.deployment("rootpw", extra) as env:
        srv = env.cli_json("server", "create", "--image", "busybox",
                           "--flavor", "m1.tiny", "--nic", "auto",
                           "--wait", "pw1")
        uuid = srv["id"]
        before = _root_entry(env, uuid)
        assert before.startswith("root:*:")

        env.cli("server", "set", "--password", "s3cret", "pw1")
        after = _root_entry(env, uuid)
        hashed = after.split(":")[1]
        assert hashed.startswith("$6$") and _matches("s3cret", hashed)
        # the rest of the entry is the guest's as it was
        assert after.split(":")[2:] == before.split(":")[2:]
        assert env.cli_json("server", "show", "pw1")["status"] == "ACTIVE"

        env.cli("server", "lock", "pw1")
        result = env.cli("server", "set", "--password", "other", "pw1",
                         check=False)
        assert result.returncode != 0 and "is locked" in result.stderr
        assert _root_entry(env, uuid) == after
        env.cli("server", "unlock", "pw1")

        # traffic from the guest: its eth0 counters bracket what the host
        # end of its veth saw (the diagnostics' guest-side view)
        gateway = env.exec(uuid, ["ip", "route"]).stdout.split(
            "default via ")[1].split()[0]
        env.exec(uuid, ["ping", "-c", "2", "-W", "1", gateway], check=False)
        sent_before = _guest_tx(env, uuid)
        admin = env.dep.sdk_connection("admin")
        try:
            diag = admin.compute.get_server_diagnostics(uuid)
        finally:
            admin.close()
        sent_after = _guest_tx(env, uuid)
        assert diag.state == "running"
        nic, = diag.nic_details
        assert nic["mac_address"] == env.cli_json(
            "port", "list", "--server", "pw1")[0]["MAC Address"]
        assert 0 < sent_before <= nic["tx_octets"] <= sent_after
        assert nic["tx_packets"] >= 2
        assert diag.cpu_details[0]["time"] > 0
        assert diag.memory_details["maximum"] == 512
        assert 0 < diag.memory_details["used"] <= 512
