"""Tenant-supplied regular expressions for list filters, in bounded time.

Nova treats the ``name`` filter of ``GET /servers`` as a regular
expression. Python's backtracking ``re`` takes exponential time on patterns
such as ``^(a+)+$`` and holds the GIL meanwhile, so one tenant's filter
stalled every other request of the API process. Filters are compiled here
with RE2 (google-re2) instead: its matching time is linear in the text, and
it releases the GIL while it matches. Linear still has a constant, the size
of the compiled program, so that is capped too: a match of a 255-character
name then costs about a millisecond at worst. Patterns RE2 cannot run
(backreferences, lookaround) are refused like invalid ones; the reason
reads like jsonschema's, as Nova's query validation words it.
"""

from __future__ import annotations

from typing import Callable

import re2

from pyct_driver import exception

# Longer than any sensible name filter; checked before RE2 sees it.
MAX_LENGTH = 1024
# Instructions of the compiled program; per-byte cost is at most linear in
# it (~1 ms per 255-character name at this bound, when RE2 falls back to
# its NFA). Ordinary filters compile to well under 100.
MAX_PROGRAM_SIZE = 1000


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False      # a tenant's typo is not a log line
    options.never_capture = True    # only "does it match" is asked
    options.max_mem = 256 << 10     # program and DFA cache, per pattern
    return options


_OPTIONS = _options()


def compile_filter(pattern: str) -> Callable[[str], bool]:
    """A predicate "``pattern`` is found in the text" (``re.search``).

    Raises ``InvalidInput`` whose reason is the jsonschema-style detail
    (``'(' is not a 'regex'``) for an empty, invalid, unsupported, too
    long or too complex pattern.
    """
    if len(pattern) > MAX_LENGTH:
        raise exception.InvalidInput(reason=f"{pattern!r} is too long")
    if not pattern:
        # Nova: the empty string is a valid regex but filters nothing
        raise exception.InvalidInput(reason="'' is not a 'regex'")
    try:
        regex = re2.compile(pattern, _OPTIONS)
    except re2.error as err:
        raise exception.InvalidInput(
            reason=f"{pattern!r} is not a 'regex'") from err
    if regex.programsize > MAX_PROGRAM_SIZE:
        raise exception.InvalidInput(reason=f"{pattern!r} is too complex")
    return lambda text: regex.search(text) is not None
