"""pyct's exceptions as the Nova exceptions nova-compute understands.

Nova's compute manager decides from an exception's class whether a build
is aborted or rescheduled and what a fault says, so every call into pyct's
container driver goes through ``nova_errors``: an unknown guest becomes
``InstanceNotFound``, a stopped one ``InstanceNotRunning``, refused input
``InvalidInput``, and any other pyct error ``InternalError`` carrying
pyct's message (the original stays chained as the cause).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from nova import exception as nova_exception

from pyct_driver import exception


@contextlib.contextmanager
def nova_errors(uuid: str) -> Iterator[None]:
    """Re-raise pyct errors of instance ``uuid`` as Nova's."""
    try:
        yield
    except exception.InstanceNotFound as err:
        raise nova_exception.InstanceNotFound(instance_id=uuid) from err
    except exception.InstanceNotRunning as err:
        raise nova_exception.InstanceNotRunning(instance_id=uuid) from err
    except exception.Invalid as err:
        raise nova_exception.InvalidInput(reason=err.message) from err
    except exception.PyctError as err:
        raise nova_exception.InternalError(err=err.message) from err
