"""API policy: rule defaults registered in code, checked with oslo.policy.

Rule names are Nova's (Glance's and Neutron's for the image and network
routes) so an operator's policy file reads the same; the defaults live in
``policies``, one module per API area, built from the personas of
``policies.base``. oslo.policy's ``[oslo_policy]`` options choose the
operator's file (``policy_file``, ``policy_dirs``), whose rules override
these defaults. ``list_rules`` feeds ``oslopolicy-sample-generator``
(namespace ``pyct``).
"""

from __future__ import annotations

from oslo_config import cfg
from oslo_policy import policy as oslo_policy

from pyct_driver import exception
from pyct_driver.api.policies import (base, compute, consoles, images,
                                     networking, operator, quotas, resize,
                                     server_extras, servers, rescue, snapshots)
from pyct_driver.context import RequestContext

# Each module of ``policies`` holds one API area's RULES; the personas
# (``base``) first, since the others refer to them.
_MODULES = (base, compute, images, networking, quotas, operator, servers,
            consoles, server_extras, resize, rescue, snapshots)


def list_rules() -> list[oslo_policy.RuleDefault]:
    """Every rule with its default, for the sample generator."""
    return [oslo_policy.RuleDefault(name, check, description=desc)
            for module in _MODULES for name, check, desc in module.RULES]


class Policy:
    """An enforcer with pyct's defaults registered."""

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self._enforcer = oslo_policy.Enforcer(conf)
        self._enforcer.register_defaults(list_rules())

    def is_admin(self, ctxt: RequestContext) -> bool:
        """Whether ``context_is_admin`` holds for the caller: what Nova
        stores as the context's ``is_admin``, so an operator who redefines
        the admin persona redefines who sees everything."""
        creds = dict(ctxt.to_policy_values())
        creds["is_admin"] = False
        return bool(self._enforcer.enforce("context_is_admin", {}, creds))

    def check(self, ctxt: RequestContext, rule: str,
              target: dict | None = None) -> bool:
        target = target if target is not None else {
            "project_id": ctxt.project_id}
        creds = dict(ctxt.to_policy_values())
        creds["is_admin"] = bool(ctxt.is_admin)
        return bool(self._enforcer.enforce(rule, target, creds))

    def authorize(self, ctxt: RequestContext, rule: str,
                  target: dict | None = None) -> None:
        if not self.check(ctxt, rule, target):
            raise exception.Forbidden(action=rule)
