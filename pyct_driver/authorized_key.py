"""The one shape of SSH public key that may reach a guest's authorized_keys.

An authorized_keys line may begin with options (``command="..."``,
``no-pty``, ``from=...``) and a key text holding a newline is two lines, so
key-pair text must never be copied into a guest as it is. ``parse`` accepts
exactly ``<type> <base64 key blob> [comment]`` on one line, with a type
OpenSSH accepts. The API refuses anything else at import (``api.ssh_keys``
also has cryptography parse the blob), and every path into a guest (file
injection, metadata service, config drive) passes the key through
``authorized_line`` again at use, so a key stored before this check existed
cannot carry a second line or options either.

``ssh-dss`` is refused: OpenSSH disabled DSA by default in 7.0 and removed
it in 10.0, and parsing it makes cryptography warn that it is deprecated.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from pyct_driver import exception

KEY_TYPES = frozenset({
    "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521", "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com"})
# Nova's reason for every key it cannot parse
UNPARSEABLE = "failed to generate fingerprint"
# any line break Python or a shell knows, and every other C0/C1 control
# (tab is whitespace between fields)
_NOT_ONE_LINE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")


class KeyLine(NamedTuple):
    key_type: str
    blob: str             # base64, as given
    comment: str

    def without_comment(self) -> str:
        return f"{self.key_type} {self.blob}"

    def line(self) -> str:
        """The authorized_keys line: no options, no newline."""
        head = self.without_comment()
        return f"{head} {self.comment}" if self.comment else head


def _invalid(reason: str) -> exception.InvalidKeypair:
    return exception.InvalidKeypair(reason=reason)


def parse(text: str) -> KeyLine:
    """One SSH public key line, or ``InvalidKeypair`` saying why not.

    The check is the line's shape only; whether the blob is a key is
    cryptography's to say (``api.ssh_keys``)."""
    text = text.strip()
    if _NOT_ONE_LINE.search(text):
        raise _invalid("a public key must be one line holding one key")
    fields = text.split(None, 2)
    if len(fields) < 2:
        raise _invalid(UNPARSEABLE)
    key_type, blob = fields[0], fields[1]
    if key_type == "ssh-dss":
        raise _invalid("ssh-dss (DSA) keys are not supported; use "
                       "ssh-ed25519, ecdsa-sha2-nistp256 or ssh-rsa")
    if key_type not in KEY_TYPES or not _BASE64.fullmatch(blob):
        raise _invalid(UNPARSEABLE)
    return KeyLine(key_type, blob, fields[2] if len(fields) > 2 else "")


def authorized_line(text: str | None) -> str | None:
    """``text`` as one safe authorized_keys line, or None if it is not
    exactly one acceptable SSH public key."""
    if not text:
        return None
    try:
        return parse(text).line()
    except exception.InvalidKeypair:
        return None
