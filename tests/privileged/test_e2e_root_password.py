"""``openstack server set --password`` and diagnostics on a real guest.

One all-in-one with the container driver and one busybox guest (m1.tiny;
busybox has no ``chpasswd``, so the guest's own ``sed`` writes its own
``/etc/shadow``). After the CLI call the guest's root entry, read inside
the guest with ``guest_exec``, holds a SHA-512 hash of the new password;
the host never opened the guest's file. A locked server refuses the
member's password change (409) and the entry stays. Diagnostics (admin,
2.48) show the guest's CPU time (non-zero: the guest ran a shell) and its
memory. Everything is torn down by the fixture, also on failure.
"""

from __future__ import annotations

import warnings

from tests.privileged import e2e_fixtures


def _root_entry(env, uuid: str) -> str:
    shadow = env.exec(uuid, ["cat", "/etc/shadow"]).stdout
    return next(line for line in shadow.splitlines()
                if line.startswith("root:"))


def _matches(password: str, hashed: str) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt
    return crypt.crypt(password, hashed) == hashed


def test_root_password_and_diagnostics():
    with e2e_fixtures.deployment("rootpw") as env:
        srv, _ = e2e_fixtures.boot(env, "pw1")
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

        admin = env.dep.sdk_connection("admin")
        try:
            diag = admin.compute.get_server_diagnostics(uuid)
        finally:
            admin.close()
        assert diag.state == "running"
        assert diag.cpu_details[0]["time"] > 0
        assert diag.memory_details["maximum"] == 512
        assert 0 < diag.memory_details["used"] <= 512
