"""What the compute side and the launcher say to each other.

Shared by the caller (pyct-compute) and the fork server: pure data and
validation, no threads, no state, no privileged call.

``GuestSpec`` describes one guest to start (its root, hostname, init argv,
cgroups to join, console log, whether to hold it before exec, the host id
range its user namespace maps); ``GuestHandle`` names a started guest init by
pid *and* start time, which is how the compute side re-adopts guests after a
restart without mistaking a recycled pid for its guest. Both travel as one
JSON object per line over the launcher's unix socket; this module also holds
the names of the files the launcher keeps in its state directory.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re

from pyct_driver import exception
from pyct_driver.virt.process.guestinit import caps

SOCKET_NAME = "launcher.sock"
PID_NAME = "launcher.pid"
LOCK_NAME = "launcher.lock"
LOG_NAME = "launcher.log"
UID_LIMIT = (1 << 32) - 1  # (uid_t)-1 means "no id" to the kernel

# The kernel's limit for sethostname(2); RFC 1123 labels joined by dots.
_HOSTNAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,62})"
                          r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$")


@dataclasses.dataclass(frozen=True)
class GuestSpec:
    """One guest to start: its init becomes PID 1 of fresh namespaces."""

    uuid: str
    root: str
    hostname: str
    argv: tuple[str, ...] = ("/sbin/init",)
    env: dict[str, str] | None = None
    cgroup_procs: tuple[str, ...] = ()
    console_log: str = ""
    console_max_bytes: int = 1048576
    # bytes a second the launcher copies from the guest's console (0: no
    # bound), up to console_burst at once; the rest waits in the pty
    console_rate: int = 65536
    console_burst: int = 1048576
    # Stop PID 1 just before exec until ``release`` (runc's create/start).
    hold: bool = False
    # (first host id, count): guest ids 0..count-1 in a user namespace;
    # None runs the guest in the host's (privileged flavors only).
    id_range: tuple[int, int] | None = None
    # Capabilities guest root keeps (bounding set), None for all: a guest
    # without a user namespace keeps only Docker's default set
    # (``caps.DOCKER_DEFAULT``) unless it is a host-root guest.
    keep_caps: tuple[str, ...] | None = None
    # Most ptys the guest's /dev/pts hands out (devpts max=).
    devpts_max: int = 1024
    # RLIMIT_NOFILE (soft, hard) of the guest's init; guest root cannot
    # raise the hard limit.
    nofile: tuple[int, int] = (1024, 524288)
    # The view service's anchors (``guestinit.views``): their /proc and
    # /sys files are bound over the guest's and follow the service's
    # restarts; empty: the kernel's own.
    views: str = ""
    # pyct:nesting: fresh proc/sysfs mounts allowed, the v1 controller
    # hierarchies writable (cgroupfs), the nesting seccomp variant
    nesting: bool = False

    def __post_init__(self) -> None:
        # Lists arrive from JSON; keep the dataclass honest about tuples.
        object.__setattr__(self, "argv", tuple(self.argv))
        object.__setattr__(self, "cgroup_procs", tuple(self.cgroup_procs))
        object.__setattr__(self, "nofile", tuple(int(n) for n in self.nofile))
        if self.keep_caps is not None:
            object.__setattr__(self, "keep_caps", tuple(self.keep_caps))
            try:
                caps.mask(self.keep_caps)
            except ValueError as err:
                raise exception.InvalidInput(reason=str(err)) from err
        if not 1 <= self.devpts_max <= (1 << 20):
            raise exception.InvalidInput(
                reason=f"devpts_max must be 1..{1 << 20}")
        soft, hard = self.nofile
        if not 64 <= soft <= hard:
            raise exception.InvalidInput(
                reason=f"bad nofile limits {self.nofile!r}")
        if self.id_range is not None:
            object.__setattr__(self, "id_range", check_id_range(
                self.id_range))
        if not self.uuid or "/" in self.uuid or "\n" in self.uuid:
            raise exception.InvalidInput(
                reason=f"bad guest uuid {self.uuid!r}")
        if not os.path.isabs(self.root):
            raise exception.InvalidInput(
                reason=f"guest root must be absolute: {self.root!r}")
        if len(self.hostname) > 64 or not _HOSTNAME_RE.match(self.hostname):
            raise exception.InvalidInput(
                reason=f"bad guest hostname {self.hostname!r}")
        if not self.argv or not self.argv[0].startswith("/"):
            raise exception.InvalidInput(
                reason=f"guest init must be an absolute path: {self.argv!r}")
        if self.console_rate < 0 or self.console_burst < 4096:
            raise exception.InvalidInput(
                reason="console_rate must be >= 0, console_burst >= 4096")
        if self.console_max_bytes < 1024:
            raise exception.InvalidInput(
                reason="console_max_bytes must be at least 1024")
        if self.views and not os.path.isabs(self.views):
            raise exception.InvalidInput(
                reason=f"views must be absolute: {self.views!r}")
        for path in self.cgroup_procs:
            if not os.path.isabs(path):
                raise exception.InvalidInput(
                    reason=f"cgroup.procs path must be absolute: {path!r}")

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["argv"] = list(self.argv)
        data["id_range"] = list(self.id_range) if self.id_range else None
        data["cgroup_procs"] = list(self.cgroup_procs)
        data["nofile"] = list(self.nofile)
        if self.keep_caps is not None:
            data["keep_caps"] = list(self.keep_caps)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> GuestSpec:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise exception.InvalidInput(
                reason=f"unknown guest spec fields {sorted(unknown)}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> GuestSpec:
        return cls.from_dict(json.loads(text))


def check_id_range(value) -> tuple[int, int]:
    """A valid (start, count): never host id 0, below (uid_t)-1."""
    try:
        start, count = (int(v) for v in value)
    except (TypeError, ValueError) as err:
        raise exception.InvalidInput(
            reason=f"bad id range {value!r}") from err
    if start <= 0 or count <= 0 or start + count > UID_LIMIT:
        raise exception.InvalidInput(reason=f"bad id range {value!r}")
    return start, count


@dataclasses.dataclass(frozen=True)
class GuestHandle:
    """A running guest init: host pid plus /proc/<pid>/stat start time."""

    pid: int
    start_time: int

    def to_dict(self) -> dict:
        return {"pid": self.pid, "start_time": self.start_time}

    @classmethod
    def from_dict(cls, data: dict) -> GuestHandle:
        return cls(pid=int(data["pid"]), start_time=int(data["start_time"]))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> GuestHandle:
        return cls.from_dict(json.loads(text))


@dataclasses.dataclass(frozen=True)
class ExecRequest:
    """One command to run in a guest, as the compute side describes it."""

    uuid: str
    pid: int
    start_time: int
    argv: tuple[str, ...]
    cgroup_procs: tuple[str, ...] = ()
    env: dict[str, str] | None = None
    # the guest has a user namespace of its own (enter it, become root)
    userns: bool = True
    keep_caps: tuple[str, ...] | None = None
    nofile: tuple[int, int] = (1024, 524288)
    nesting: bool = False  # the guest's seccomp variant (GuestSpec's)

    @classmethod
    def from_dict(cls, data: dict) -> ExecRequest:
        try:
            req = cls(uuid=str(data["uuid"]), pid=int(data["pid"]),
                      start_time=int(data["start_time"]),
                      argv=tuple(str(a) for a in data["argv"]),
                      cgroup_procs=tuple(data.get("cgroup_procs") or ()),
                      env={str(k): str(v) for k, v in
                           (data.get("env") or {}).items()} or None,
                      userns=bool(data.get("userns", True)),
                      keep_caps=(tuple(data["keep_caps"])
                                 if data.get("keep_caps") is not None
                                 else None),
                      nofile=tuple(int(n) for n in data.get(
                          "nofile", (1024, 524288))),
                      nesting=data.get("nesting", False) is True)
        except (KeyError, TypeError, ValueError) as err:
            raise exception.InvalidInput(
                reason=f"bad exec request: {err}") from err
        if not req.argv or not req.argv[0] or "\0" in "".join(req.argv):
            raise exception.InvalidInput(reason="exec needs a command")
        if req.keep_caps is not None:
            try:
                caps.mask(req.keep_caps)
            except ValueError as err:
                raise exception.InvalidInput(reason=str(err)) from err
        for path in req.cgroup_procs:
            if not os.path.isabs(path) or not path.endswith("cgroup.procs"):
                raise exception.InvalidInput(reason=f"bad cgroup {path!r}")
        return req

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["argv"] = list(self.argv)
        data["cgroup_procs"] = list(self.cgroup_procs)
        data["nofile"] = list(self.nofile)
        data["keep_caps"] = (list(self.keep_caps)
                             if self.keep_caps is not None else None)
        return data


def encode(message: dict) -> bytes:
    """One request or reply on the wire: compact JSON and a newline."""
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> dict:
    try:
        message = json.loads(line)
    except ValueError as err:
        raise exception.ProcessError(
            reason=f"malformed launcher message: {err}") from err
    if not isinstance(message, dict):
        raise exception.ProcessError(
            reason="launcher message is not an object")
    return message
