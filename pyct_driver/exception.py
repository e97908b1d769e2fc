"""The one exception tree of pyct.

Every error pyct raises on purpose is a ``PyctError``. Third-party errors
(SQLAlchemy, oslo.messaging, OSError from the kernel) are wrapped where they
enter pyct with ``raise ... from err`` so callers only catch these. The API
layer turns each into a fault body in the shape of the route's service
(Nova, Neutron or Glance: ``api.faults``) using ``code``::

    PyctError (500)
    ├── Invalid (400)
    │   ├── InvalidInput
    │   ├── MarkerNotFound          a list's marker is not a known item
    │   ├── InvalidExtraSpec
    │   ├── InvalidKeypair          key pair data that is not one usable key
    │   ├── InvalidImage
    │   │   └── HostileImage        an archive that would escape its root
    │   ├── ConsoleTypeUnavailable  a console kind this cloud doesn't serve
    │   ├── InvalidMicroversion (406)
    │   └── SecurityGroupRuleInvalid    a malformed rule (Neutron's words)
    ├── NotAuthorized (401)
    ├── Forbidden (403)
    │   └── QuotaExceeded           a request past the project's limits
    ├── NotFound (404)
    │   ├── InstanceNotFound, FlavorNotFound, FlavorAccessNotFound,
    │   │   ImageNotFound, ServiceNotFound, ActionNotFound,
    │   │   AggregateNotFound, InstanceTagNotFound,
    │   ├── InstanceGroupNotFound, PortNotFound,
    │   └── SecurityGroupNotFound, SecurityGroupRuleNotFound
    ├── Conflict (409)
    │   ├── InstanceInvalidState    a task-state compare-and-swap lost
    │   ├── InstanceIsLocked        a locked server, the caller not admin
    │   ├── HostHasInstances        a compute service still hosting some
    │   ├── PortInUse               a port another server is bound to
    │   ├── HostBusy                another process holds this compute host
    │   ├── InstanceNotReady        no console to attach to (not running)
    │   ├── RPCVersionCapError      a method newer than [upgrade_levels]
    │   ├── SecurityGroupInUse      a group ports still carry
    │   ├── OverQuota               past a network quota (Neutron's 409)
    │   └── Duplicate               a unique name or id already exists
    │       ├── FlavorAccessExists
    │       └── SecurityGroupRuleExists
    ├── Gone (410)                  an image deleted while uploaded
    ├── TooLarge (413)
    ├── UnsupportedMediaType (415)
    ├── NotImplementedYet (501)     an OpenStack feature pyct lacks
    ├── NoValidHost                 the scheduler found no compute node
    ├── MigrationPreCheckError (400) a move the hosts cannot make
    ├── InterfaceAttachFailed       the compute host could not plug a port
    ├── DBError                     the database failed (wrapped SQLAlchemy)
    │   └── DBUnavailable (503)     unreachable, or the connection dropped
    ├── RPCError                    the message bus failed (wrapped)
    │   ├── RPCUnavailable (503)    the bus unreachable past the retries
    │   └── RPCTimeout (503)        a compute host did not answer a call
    └── VirtError                   the virt driver failed
        ├── ResizeError, CgroupError, RootfsError, ProcessError,
        │   InstanceNotRunning, SnapshotError
        ├── TransferError           a migration's stream failed or differs
        └── NetworkError
            └── NftError            nf_tables refused (wrapped)
"""

from __future__ import annotations


class PyctError(Exception):
    """Base class; ``code`` is the HTTP status the API answers with. A 5xx
    answer shows the message only of a ``safe`` error (pyct's own words,
    as Nova's ``safe``); any other answers a generic message and the
    request id, and the full error goes to the log."""

    code: int = 500
    safe: bool = False
    msg_fmt: str = "An unknown error occurred."

    def __init__(self, message: str | None = None, **kwargs: object) -> None:
        self.kwargs = kwargs
        if message is None:
            try:
                message = self.msg_fmt % kwargs
            except (KeyError, TypeError):
                message = self.msg_fmt
        self.message = message
        super().__init__(message)


class Invalid(PyctError):
    code = 400
    msg_fmt = "Invalid input: %(reason)s"


class InvalidInput(Invalid):
    msg_fmt = "Invalid input received: %(reason)s"


class MarkerNotFound(Invalid):
    msg_fmt = "marker [%(marker)s] not found"


class InvalidExtraSpec(Invalid):
    msg_fmt = "Invalid extra spec %(key)s: %(reason)s"


class InvalidKeypair(Invalid):
    msg_fmt = "Keypair data is invalid: %(reason)s"


class InvalidImage(Invalid):
    msg_fmt = "Invalid image %(image)s: %(reason)s"


class HostileImage(InvalidImage):
    msg_fmt = "Refused image archive %(image)s: %(reason)s"


class ConsoleTypeUnavailable(Invalid):
    msg_fmt = "Unavailable console type %(console_type)s."


class InvalidMicroversion(Invalid):
    code = 406
    msg_fmt = "Version %(version)s is not supported by the API."


class NotAuthorized(PyctError):
    code = 401
    msg_fmt = "Authentication required."


class Forbidden(PyctError):
    code = 403
    msg_fmt = "Policy doesn't allow %(action)s to be performed."


class QuotaExceeded(Forbidden):
    msg_fmt = "Quota exceeded for %(resource)s."


class NotFound(PyctError):
    code = 404
    msg_fmt = "Resource could not be found."


class InstanceNotFound(NotFound):
    msg_fmt = "Instance %(instance_id)s could not be found."


class FlavorNotFound(NotFound):
    msg_fmt = "Flavor %(flavor_id)s could not be found."


class FlavorAccessNotFound(NotFound):
    msg_fmt = ("Flavor access not found for %(flavor_id)s / "
               "%(project_id)s combination.")


class ImageNotFound(NotFound):
    msg_fmt = "Image %(image_id)s could not be found."


class ServiceNotFound(NotFound):
    msg_fmt = "Service %(host)s could not be found."


class AggregateNotFound(NotFound):
    msg_fmt = "Aggregate %(aggregate_id)s could not be found."


class ActionNotFound(NotFound):
    msg_fmt = "Action for request_id %(request_id)s not found."


class InstanceTagNotFound(NotFound):
    msg_fmt = "Instance %(instance_id)s has no tag '%(tag)s'"


class InstanceGroupNotFound(NotFound):
    msg_fmt = "Instance group %(group_uuid)s could not be found."


class PortNotFound(NotFound):
    msg_fmt = "Port id %(port_id)s could not be found."


class Conflict(PyctError):
    code = 409
    msg_fmt = "Conflict: %(reason)s"


class InstanceInvalidState(Conflict):
    msg_fmt = ("Cannot '%(action)s' instance %(instance_id)s while it is in "
               "%(attr)s %(state)s")


class HostHasInstances(Conflict):
    msg_fmt = ("Unable to delete compute service that is hosting "
               "instances. Migrate or delete the instances first.")


class PortInUse(Conflict):
    msg_fmt = "Port %(port_id)s is still in use."


class HostBusy(Conflict):
    msg_fmt = ("Compute host %(host)s is held by process %(pid)s "
               "(%(role)s); stop it first")


class InstanceNotReady(Conflict):
    msg_fmt = "Instance %(instance_id)s is not ready"


class RPCVersionCapError(Conflict):
    msg_fmt = ("%(method)s needs compute RPC API %(version)s, but "
               "[upgrade_levels] compute caps it at %(cap)s; it is "
               "available once every compute service is upgraded.")


class Duplicate(Conflict):
    msg_fmt = "%(what)s already exists."


class FlavorAccessExists(Duplicate):
    msg_fmt = ("Flavor access already exists for flavor %(flavor_id)s "
               "and project %(project_id)s combination.")


class Gone(PyctError):
    code = 410
    msg_fmt = "The resource is gone."


class TooLarge(PyctError):
    code = 413
    msg_fmt = "Request is too large."


class UnsupportedMediaType(PyctError):
    """A body in a media type the route does not take; ``accepted`` lists
    the ones it does (Glance's image PATCH answers them in Accept-Patch)."""

    code = 415
    msg_fmt = "Unsupported Content-Type"

    def __init__(self, message: str | None = None,
                 accepted: tuple[str, ...] = (), **kwargs: object) -> None:
        super().__init__(message, **kwargs)
        self.accepted = accepted


class NotImplementedYet(PyctError):
    """A feature OpenStack has that pyct does not (yet)."""

    code = 501
    safe = True
    msg_fmt = "Not implemented: %(what)s"


class NoValidHost(PyctError):
    safe = True
    msg_fmt = "No valid host was found. %(reason)s"


class MigrationPreCheckError(PyctError):
    code = 400
    safe = True
    msg_fmt = "Migration pre-check error: %(reason)s"


class InterfaceAttachFailed(PyctError):
    safe = True
    msg_fmt = ("Failed to attach network adapter device to "
               "%(instance_uuid)s")


class DBError(PyctError):
    msg_fmt = "Database error: %(reason)s"


class DBUnavailable(DBError):
    """The database could not be reached or dropped the connection; the
    transaction was rolled back, so a client may simply retry (503 with
    a ``Retry-After``)."""

    code = 503
    safe = True
    retry_after = 5
    msg_fmt = ("The database is unavailable; nothing was changed. Retry "
               "later.")


class RPCError(PyctError):
    msg_fmt = "Messaging error: %(reason)s"


class RPCTimeout(RPCError):
    """A call's answer did not come in ``rpc_response_timeout``: the
    host is down, or the answer was lost with a bus connection."""

    code = 503
    safe = True
    retry_after = 5
    msg_fmt = "Compute host %(host)s did not answer in time; retry later."


class RPCUnavailable(RPCError):
    """The message bus stayed unreachable through the send's retries."""

    code = 503
    safe = True
    retry_after = 5
    msg_fmt = ("The message bus is unavailable; the request was not "
               "sent. Retry later.")


class VirtError(PyctError):
    msg_fmt = "Virt driver error: %(reason)s"


class TransferError(VirtError):
    msg_fmt = "Migration transfer failed: %(reason)s"


class ResizeError(VirtError):
    msg_fmt = "Resize error: %(reason)s"


class CgroupError(VirtError):
    msg_fmt = "cgroup error: %(reason)s"


class RootfsError(VirtError):
    msg_fmt = "root filesystem error: %(reason)s"


class SnapshotError(VirtError):
    msg_fmt = "Snapshot refused: %(reason)s"


class ProcessError(VirtError):
    msg_fmt = "guest process error: %(reason)s"


class NetworkError(VirtError):
    msg_fmt = "network error: %(reason)s"


class NftError(NetworkError):
    msg_fmt = "nf_tables: %(reason)s"


class InstanceNotRunning(VirtError):
    msg_fmt = "Instance %(instance_id)s is not running."


class InstanceIsLocked(Conflict):
    msg_fmt = "Instance %(instance_uuid)s is locked"


class SecurityGroupRuleInvalid(Invalid):
    """A rule Neutron would refuse; ``kind`` is Neutron's fault type."""

    msg_fmt = "%(reason)s"

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason=reason)
        self.neutron_type = kind


class SecurityGroupNotFound(NotFound):
    msg_fmt = "Security group %(id)s does not exist"


class SecurityGroupRuleNotFound(NotFound):
    msg_fmt = "Security group rule %(id)s does not exist"


class SecurityGroupInUse(Conflict):
    msg_fmt = "Security Group %(id)s in use."


class SecurityGroupRuleExists(Duplicate):
    msg_fmt = "Security group rule already exists. Rule id is %(id)s."


class OverQuota(Conflict):
    msg_fmt = "Quota exceeded for resources: ['%(resources)s']."
