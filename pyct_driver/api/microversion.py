"""Compute API microversions: parsing the request headers, comparing.

A request names its version in ``OpenStack-API-Version: compute 2.x`` or
the legacy ``X-OpenStack-Nova-API-Version: 2.x``; none means 2.1 and
``latest`` means our maximum. A string that is not ``X.Y`` is a 400, a
version outside ``MIN..MAX`` a 406, as Nova answers.
"""

from __future__ import annotations

import re

from pyct_driver import exception

MIN_VERSION = (2, 1)
# servers, flavors and keypairs answer exactly as Nova up to 2.96;
# what pyct lacks answers as a Nova deployment without that capability.
MAX_VERSION = (2, 96)

HEADER = "OpenStack-API-Version"
LEGACY_HEADER = "X-OpenStack-Nova-API-Version"
SERVICE = "compute"

_VERSION_RE = re.compile(r"^([1-9]\d*)\.([1-9]\d*|0)$")

Version = tuple[int, int]


def to_str(version: Version) -> str:
    return "%d.%d" % version


def _from_headers(headers) -> str | None:
    value = headers.get(HEADER)
    if value:
        for item in value.split(","):
            parts = item.strip().split(None, 1)
            if len(parts) == 2 and parts[0].lower() == SERVICE:
                return parts[1].strip()
            if len(parts) == 1 and parts[0].lower() == SERVICE:
                return ""
    legacy = headers.get(LEGACY_HEADER)
    if legacy is not None:
        return legacy.strip()
    return None


def parse(headers) -> Version:
    """The version a request asks for; raise Invalid (400) or 406."""
    text = _from_headers(headers)
    if text is None:
        return MIN_VERSION
    if text.lower() == "latest":
        return MAX_VERSION
    match = _VERSION_RE.match(text)
    if not match:
        raise exception.Invalid(
            f"API Version String {text} is of invalid format. Must be of "
            "format MajorNum.MinorNum.")
    version = (int(match.group(1)), int(match.group(2)))
    if not MIN_VERSION <= version <= MAX_VERSION:
        raise exception.InvalidMicroversion(
            f"Version {to_str(version)} is not supported by the API. "
            f"Minimum is {to_str(MIN_VERSION)} and maximum is "
            f"{to_str(MAX_VERSION)}.")
    return version


def response_headers(version: Version) -> list[tuple[str, str]]:
    return [(HEADER, f"{SERVICE} {to_str(version)}"),
            (LEGACY_HEADER, to_str(version)),
            ("Vary", f"{HEADER}, {LEGACY_HEADER}")]
