"""Keeps eventlet out of every pyct process; import it before any oslo library.

pyct runs on native threads. eventlet is installed only because oslo.messaging
requires oslo.service, which requires eventlet whatever backend is used; yet
futurist, oslo.utils and oslo.messaging import it whenever it is importable.
That import costs a sixth of a second and ~15 MB, and prints eventlet's
deprecation notice and eight CryptographyDeprecationWarnings (eventlet's
resolver loads dnspython, twice, whose DNSSEC module touches cryptography's
deprecated DSA), on every ``pyct-manage`` call and service start. A ``None``
entry in ``sys.modules`` makes ``import eventlet`` raise ImportError, and those
libraries take the path they take when eventlet is not installed. Every console
script imports this module first; the RPC transport module imports it too, for
code that loads pyct as a library. A process that already imported eventlet
(one embedding pyct) keeps it.
"""

from __future__ import annotations

import sys

BLOCKED = "eventlet"

if BLOCKED not in sys.modules:
    sys.modules[BLOCKED] = None  # type: ignore[assignment]
