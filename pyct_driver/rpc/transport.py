"""The message bus: transports, targets and the context serializer.

Production uses ``transport_url = rabbit://…``; the all-in-one and the
in-process tests use ``fake://`` (oslo.messaging's in-process driver). Only
the request context crosses as more than primitives, and it crosses as a
dict. All oslo.messaging setup happens here so the rest of pyct imports
``messaging`` from here, never oslo_messaging itself.
"""

from __future__ import annotations

# before oslo.service, futurist and oslo.utils look for eventlet
from pyct_driver import no_eventlet  # noqa: F401,I100

import logging
from typing import Any

from oslo_config import cfg
from oslo_service import backend as service_backend

# oslo.messaging's server module asks oslo.service for a backend (its
# default is eventlet); choose threads before it is imported.
if service_backend.get_backend_type() is None:
    service_backend.init_backend(service_backend.BackendType.THREADING)

import oslo_messaging as messaging  # noqa: E402
from oslo_messaging import opts as messaging_opts  # noqa: E402

from pyct_driver import context as pyct_context
from pyct_driver import exception

TOPIC = "pyct-compute"
EXCHANGE = "pyct"

_TRANSPORTS: dict[object, messaging.Transport] = {}


# amqp's message (abstract_channel.IGNORED_METHOD_DURING_CHANNEL_CLOSE) and
# the method it names (spec.Basic.Cancel)
_IGNORED_DURING_CLOSE = ("Received method %s during closing channel %s. "
                         "This method will be ignored")
_BASIC_CANCEL = (60, 30)


class _FanoutCancelFilter(logging.Filter):
    """Drops amqp's warning about the Basic.Cancel RabbitMQ sends on every
    RPC server stop: oslo.messaging deletes the server's fanout queue while
    the closing channel still consumes it. Any other amqp warning passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        return not (
            record.msg == _IGNORED_DURING_CLOSE
            and isinstance(args, tuple) and bool(args)
            and args[0] == _BASIC_CANCEL)


logging.getLogger("amqp").addFilter(_FanoutCancelFilter())


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register oslo.messaging's options (transport_url, rabbit, …)."""
    # defaults first: list_opts() hands out copies, and a copy whose default
    # differs from the original is a "duplicate" to oslo.config later
    messaging.set_transport_defaults(control_exchange=EXCHANGE)
    for group, opts in messaging_opts.list_opts():
        conf.register_opts(opts, group=group)


def get_transport(conf: cfg.ConfigOpts, url: str | None = None
                  ) -> messaging.Transport:
    """One RPC transport per URL, shared by every client and server."""
    key = url or conf.transport_url
    if key not in _TRANSPORTS:
        try:
            _TRANSPORTS[key] = messaging.get_rpc_transport(
                conf, url=url, allowed_remote_exmods=[exception.__name__])
        except (messaging.InvalidTransportURL,
                messaging.DriverLoadFailure) as err:
            raise exception.RPCError(reason=str(err)) from err
    return _TRANSPORTS[key]


def get_notification_transport(conf: cfg.ConfigOpts) -> messaging.Transport:
    """The notification transport: ``[oslo_messaging_notifications]
    transport_url``, else the RPC one's URL (oslo.messaging's rule)."""
    url = conf.oslo_messaging_notifications.transport_url
    key = ("notifications", url or conf.transport_url)
    if key not in _TRANSPORTS:
        try:
            _TRANSPORTS[key] = messaging.get_notification_transport(
                conf, url=url)
        except (messaging.InvalidTransportURL,
                messaging.DriverLoadFailure) as err:
            raise exception.RPCError(reason=str(err)) from err
    return _TRANSPORTS[key]


def cleanup() -> None:
    """Close every transport (service shutdown, test teardown)."""
    for transport in _TRANSPORTS.values():
        transport.cleanup()
    _TRANSPORTS.clear()


class ContextSerializer(messaging.NoOpSerializer):
    """Sends ``RequestContext`` as a dict and rebuilds it on arrival."""

    def serialize_context(self, ctxt: Any) -> dict:
        return ctxt.to_dict()

    def deserialize_context(self, ctxt: dict) -> pyct_context.RequestContext:
        return pyct_context.RequestContext.from_dict(ctxt)
