"""Notifications of instance actions and exceptions, as Nova sends them.

``Notifications.action(ctxt, uuid, "reboot")`` brackets one operation
(of the compute manager, or of the API when it deletes an instance no
compute service holds): it emits ``instance.reboot.start`` on entry and
``instance.reboot.end`` when the block ends well; a failure (``fail(err)``
inside the block, or an exception leaving it) emits
``instance.reboot.error`` with the fault, for the actions Nova has an
error notification for, and always ``compute.exception`` (as Nova's
``wrap_exception`` does). Each payload is built from the instance's row as
it is at that moment (``notify_payloads``). Versioned notifications go
through an oslo.messaging ``Notifier`` with publisher ``nova-compute:<host>``
or ``nova-api:<host>`` (Nova's source names, so consumers filtering on
them work) on ``[notifications] versioned_notifications_topics``; the
unversioned format, when ``notification_format`` asks for it, on
``[oslo_messaging_notifications] topics`` as
``compute.instance.<action>.<phase>`` from ``compute.<host>`` (``api.<host>``).
A notification that cannot be sent is logged and never fails the
operation.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable, Iterator, Protocol, TypeVar

from oslo_config import cfg
from oslo_log import log as logging

from pyct_driver import exception
from pyct_driver.notifications import payloads
from pyct_driver.context import RequestContext
from pyct_driver.db import catalog as db_catalog
from pyct_driver.db import instances as db_instances
from pyct_driver.db import keypairs as db_keypairs
from pyct_driver.db import networks as db_networks
from pyct_driver.db.engine import Database
from pyct_driver.rpc import transport as rpc_transport
from pyct_driver.rpc.transport import messaging

LOG = logging.getLogger(__name__)
_F = TypeVar("_F", bound=Callable[..., Any])
# set on an exception once compute.exception told of it
_SENT = "_pyct_notified"

# actions whose failure Nova reports as instance.<action>.error; the others
# only raise compute.exception
ERROR_ACTIONS = frozenset({"create", "reboot", "interface_attach"})
# transports whose messages no other process can read: notifications sent
# there would only pile up in memory
_LOCAL_SCHEMES = ("inproc:", "fake:")


class NotifierLike(Protocol):
    """What is used of an oslo.messaging ``Notifier``."""

    def info(self, ctxt: Any, event_type: str, payload: Any) -> None: ...

    def error(self, ctxt: Any, event_type: str, payload: Any) -> None: ...


class _Serializer(rpc_transport.ContextSerializer):
    """The request context without its token: a notification is read by
    any consumer of the topic, a token would let it act as the user."""

    def serialize_context(self, ctxt: Any) -> dict:
        values = super().serialize_context(ctxt)
        values.pop("auth_token", None)
        return values


class ActionNote:
    """One bracketed action; ``fail(err)`` reports its failure once."""

    def __init__(self, owner: "Notifications", ctxt: RequestContext,
                 uuid: str, action: str) -> None:
        self.owner, self.ctxt, self.uuid, self.action = (owner, ctxt, uuid,
                                                         action)
        self.failed = False

    def fail(self, err: BaseException) -> None:
        if self.failed:
            return
        self.failed = True
        if self.action in ERROR_ACTIONS:
            self.owner.instance_event(self.ctxt, self.uuid, self.action,
                                      "error", err)
        self.owner.exception(self.ctxt, err)


class Notifications:
    """Notifications of one compute host; no notifier: nothing is sent."""

    def __init__(self, db: Database, host: str,
                 versioned: NotifierLike | None = None,
                 legacy: NotifierLike | None = None) -> None:
        self.db = db
        self.host = host
        self.versioned = versioned
        self.legacy = legacy

    @property
    def enabled(self) -> bool:
        return self.versioned is not None or self.legacy is not None

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts, db: Database, host: str,
                  source: str = "compute") -> "Notifications":
        """As ``[oslo_messaging_notifications]`` and ``[notifications]``
        say, for the ``source`` service ("compute" or "api") on ``host``;
        disabled when the driver is unset or ``noop``."""
        # a configuration built from pyct's options alone (an embedding
        # WSGI server's, a test's) lacks oslo.messaging's: their defaults
        rpc_transport.register_opts(conf)
        drivers = [d for d in conf.oslo_messaging_notifications.driver
                   if d != "noop"]
        if not drivers:
            return cls(db, host)
        url = (conf.oslo_messaging_notifications.transport_url
               or conf.transport_url or "")
        if url.startswith(_LOCAL_SCHEMES):
            LOG.warning("notifications are off: transport %s reaches no "
                        "other process; set [oslo_messaging_notifications] "
                        "transport_url to a broker", url.split(":")[0])
            return cls(db, host)
        transport = rpc_transport.get_notification_transport(conf)
        fmt = conf.notifications.notification_format
        versioned = legacy = None
        if fmt in ("versioned", "both"):
            versioned = messaging.Notifier(
                transport, publisher_id=f"nova-{source}:{host}",
                topics=list(conf.notifications.versioned_notifications_topics),
                serializer=_Serializer())
        if fmt in ("unversioned", "both"):
            legacy = messaging.Notifier(
                transport, publisher_id=f"{source}.{host}",
                serializer=_Serializer())
        return cls(db, host, versioned, legacy)

    @contextlib.contextmanager
    def action(self, ctxt: RequestContext, uuid: str, action: str,
               unplugged: str | None = None) -> Iterator[ActionNote]:
        """Bracket ``action``; ``unplugged``: a port the action unplugs,
        left out of the end payload (the API releases it afterwards;
        Nova's payload no longer lists a detached port)."""
        note = ActionNote(self, ctxt, uuid, action)
        self.instance_event(ctxt, uuid, action, "start")
        try:
            yield note
        except Exception as err:
            note.fail(err)
            raise
        if not note.failed:
            self.instance_event(ctxt, uuid, action, "end",
                                without_port=unplugged)

    def instance_event(self, ctxt: RequestContext, uuid: str, action: str,
                       phase: str, err: BaseException | None = None,
                       without_port: str | None = None) -> None:
        """Emit ``instance.<action>.<phase>`` for the row as it is now."""
        if not self.enabled:
            return
        try:
            self._instance_event(ctxt, uuid, action, phase, err,
                                 without_port)
        except Exception:  # never fail an operation over a notification
            LOG.exception("could not send instance.%s.%s for %s", action,
                          phase, uuid)

    def _instance_event(self, ctxt: RequestContext, uuid: str, action: str,
                        phase: str, err: BaseException | None,
                        without_port: str | None) -> None:
        try:
            instance = db_instances.get(self.db, uuid, read_deleted=True)
        except exception.InstanceNotFound:
            return
        ports = [] if instance.get("deleted") else [
            p for p in db_networks.list_ports(self.db, instance_uuids=[uuid])
            if p["id"] != without_port]
        priority = "error" if phase == "error" else "info"
        if self.versioned is not None:
            payload = self._versioned_payload(ctxt, instance, ports, action,
                                              err)
            getattr(self.versioned, priority)(
                ctxt, f"instance.{action}.{phase}", payload)
        if self.legacy is not None:
            getattr(self.legacy, priority)(
                ctxt, f"compute.instance.{action}.{phase}",
                payloads.legacy_payload(instance, ports, err))

    def _versioned_payload(self, ctxt: RequestContext, instance: dict,
                           ports: list[dict], action: str,
                           err: BaseException | None) -> dict:
        try:
            image_props = dict(db_catalog.image_get(
                self.db, instance["image_ref"]).get("properties") or {})
        except exception.ImageNotFound:
            image_props = {}
        fault = payloads.exception_payload(err) if err is not None else None
        data = payloads.instance_data(ctxt, instance, ports, image_props,
                                      fault)
        if action != "create":
            return payloads.envelope(payloads.ACTION_PAYLOAD, data)
        keypair = None
        if instance.get("key_name"):
            with contextlib.suppress(exception.NotFound):
                keypair = db_keypairs.get(self.db, instance["user_id"],
                                          instance["key_name"])
        return payloads.envelope(payloads.CREATE_PAYLOAD, payloads.create_data(
            data, instance, keypair))

    def exception(self, ctxt: RequestContext, err: BaseException) -> None:
        """``compute.exception`` (versioned format only, as in Nova), once
        per exception."""
        if self.versioned is None or getattr(err, _SENT, False):
            return
        with contextlib.suppress(AttributeError):
            setattr(err, _SENT, True)
        try:
            self.versioned.error(ctxt, "compute.exception",
                                 payloads.exception_payload(err))
        except Exception:  # never fail an operation over a notification
            LOG.exception("could not send compute.exception")


def reports_exceptions(endpoint: _F) -> _F:
    """An RPC endpoint whose exceptions go out as ``compute.exception``
    before they reach the caller, as Nova's ``wrap_exception`` does (the
    endpoint's object has ``notify``)."""
    @functools.wraps(endpoint)
    def wrapper(self: Any, ctxt: RequestContext, *args: Any,
                **kwargs: Any) -> Any:
        try:
            return endpoint(self, ctxt, *args, **kwargs)
        except Exception as err:
            self.notify.exception(ctxt, err)
            raise
    return wrapper  # type: ignore[return-value]
