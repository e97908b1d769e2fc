"""The one place pyct loads plugins with stevedore.

Virt drivers live in the entry-point namespace ``pyct_driver.virt_drivers``
(``fake`` and ``container``); a driver is constructed with the service's
``ConfigOpts`` because drivers are composition roots of their own backends.
"""

from __future__ import annotations

from oslo_config import cfg
from stevedore import driver as stevedore_driver
from stevedore import exception as stevedore_exc

from pyct_driver import exception
from pyct_driver.virt.base import VirtDriver

VIRT_NAMESPACE = "pyct_driver.virt_drivers"


def load_virt_driver(name: str, conf: cfg.ConfigOpts) -> VirtDriver:
    """Build the virt driver registered as ``name``."""
    try:
        manager = stevedore_driver.DriverManager(
            VIRT_NAMESPACE, name, invoke_on_load=True, invoke_args=(conf,))
    except stevedore_exc.NoMatches as err:
        raise exception.InvalidInput(
            reason=f"unknown virt_driver {name!r}") from err
    driver = manager.driver
    if not isinstance(driver, VirtDriver):
        raise exception.InvalidInput(
            reason=f"virt_driver {name!r} is not a VirtDriver")
    return driver
