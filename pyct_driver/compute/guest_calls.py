"""The compute manager's calls that reach into a running guest.

Console output, the serial console's attachment, the root password and
diagnostics: each reads the instance, asks the virt driver, and changes no
state of the instance, so they sit apart from the manager's lifecycle
operations. ``ComputeManager`` inherits them (they are RPC endpoints
like its own methods) and provides ``db``, ``driver``, ``consoles``,
``spec`` and ``instance_lock``.
"""

from __future__ import annotations

import socket

from pyct_driver import exception, states
from pyct_driver.context import RequestContext
from pyct_driver.db import instances as db_instances
from pyct_driver.notifications.notifier import reports_exceptions


class GuestCalls:
    """RPC calls about a guest that leave its state alone."""

    @reports_exceptions
    def get_console_output(self, ctxt: RequestContext, instance_uuid: str,
                           length: int | None = None) -> str:
        instance = db_instances.get(self.db, instance_uuid)
        return self.driver.get_console_output(self.spec(instance), length)

    @reports_exceptions
    def get_serial_console(self, ctxt: RequestContext, instance_uuid: str
                           ) -> dict:
        """Where the console proxy attaches to this guest, with a one-time
        key for it (``console_endpoint``)."""
        instance = db_instances.get(self.db, instance_uuid)
        if self.consoles is None:
            raise exception.ConsoleTypeUnavailable(console_type="serial")
        if self.driver.get_info(self.spec(instance)).power_state != \
                states.RUNNING:
            raise exception.InstanceNotReady(instance_id=instance_uuid)
        return self.consoles.authorize(instance_uuid)

    def attach_console(self, instance_uuid: str) -> socket.socket:
        """A socket on the guest's console (the endpoint's ``attach``)."""
        instance = db_instances.get(self.db, instance_uuid)
        return self.driver.attach_console(self.spec(instance))

    def set_admin_password(self, ctxt: RequestContext, instance_uuid: str,
                           new_pass: str) -> None:
        with self.instance_lock(instance_uuid):
            instance = db_instances.get(self.db, instance_uuid)
            self.driver.set_admin_password(self.spec(instance), new_pass)

    @reports_exceptions
    def get_diagnostics(self, ctxt: RequestContext,
                        instance_uuid: str) -> dict:
        instance = db_instances.get(self.db, instance_uuid)
        return self.driver.get_diagnostics(self.spec(instance))
