"""``inproc://``: the all-in-one's in-process message bus, without polling.

oslo.messaging's ``fake://`` driver checks its queues every 50 ms, which adds
up to 50 ms to every API → compute cast in a single-process deployment.
This driver is that driver with one change: a delivery wakes the waiting
listeners at once (a condition variable instead of a sleep). It builds on
oslo.messaging's fake driver internals, so it is only for the all-in-one and
tests; production uses ``rabbit://``.
"""

from __future__ import annotations

import threading
import time

from pyct_driver.rpc.transport import messaging as oslo_messaging
from oslo_messaging._drivers import base  # noqa: I100 - after the backend
from oslo_messaging._drivers import impl_fake

# one condition for the whole process: deliveries are rare enough that
# waking every listener costs nothing, and it keeps the exchanges simple
_WAKE = threading.Condition()


class _Exchange(impl_fake.FakeExchange):
    def deliver_message(self, *args, **kwargs) -> None:
        super().deliver_message(*args, **kwargs)
        with _WAKE:
            _WAKE.notify_all()


class _ExchangeManager(impl_fake.FakeExchangeManager):
    _exchanges_lock = threading.Lock()
    _exchanges: dict = {}

    def get_exchange(self, name):
        name = name or self._default_exchange
        with self._exchanges_lock:
            return self._exchanges.setdefault(name, _Exchange(name))


class _Listener(impl_fake.FakeListener):
    @base.batch_poll_helper
    def poll(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._stopped.is_set():
            with _WAKE:
                for target in self._targets:
                    exchange = self._exchange_manager.get_exchange(
                        target.exchange)
                    ctxt, message, reply_q, requeue = exchange.poll(
                        target, self._pool)
                    if message is not None:
                        return impl_fake.FakeIncomingMessage(
                            ctxt, message, reply_q, requeue)
                wait = 0.5 if deadline is None else min(
                    0.5, deadline - time.monotonic())
                if wait <= 0:
                    return None
                # a bounded wait still notices stop() promptly
                _WAKE.wait(wait)
        return None


class InProcDriver(impl_fake.FakeDriver):
    """The fake driver, woken by deliveries instead of polling."""

    def __init__(self, conf, url, default_exchange=None,
                 allowed_remote_exmods=None) -> None:
        super().__init__(conf, url, default_exchange, allowed_remote_exmods)
        self._exchange_manager = _ExchangeManager(default_exchange)

    def listen(self, target, batch_size, batch_timeout):
        exchange = target.exchange or self._default_exchange
        listener = _Listener(self._exchange_manager, [
            oslo_messaging.Target(topic=target.topic, server=target.server,
                                  exchange=exchange),
            oslo_messaging.Target(topic=target.topic, exchange=exchange)])
        return base.PollStyleListenerAdapter(listener, batch_size,
                                             batch_timeout)
