"""The container driver's interactive console: a socket on the guest's pty.

The launcher holds every guest's console master (``forkserver.console``); an
``attach`` gives the caller one end of a socket pair the launcher fans the
guest's output into (beside the console log) and copies input from, within
the console's byte rate. A guest the launcher does not run -- stopped, or
started by a launcher that has since died -- has no console to attach to.
"""

from __future__ import annotations

import socket

from pyct_driver import exception
from pyct_driver.virt import base
from pyct_driver.virt.process.caller.client import LauncherClient


class ConsoleSide:
    """``attach_console`` of ``ContainerDriver`` (its ``launcher``)."""

    launcher: LauncherClient

    def attach_console(self, instance: base.InstanceSpec) -> socket.socket:
        try:
            fd = self.launcher.attach_console(instance.uuid)
        except exception.ProcessError as err:
            raise exception.InstanceNotReady(
                instance_id=instance.uuid) from err
        return socket.socket(fileno=fd)
