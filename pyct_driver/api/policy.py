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

import threading
import time

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
    """An enforcer with pyct's defaults registered.

    oslo.policy's ``enforce`` looks for the policy file and every
    ``policy_dirs`` entry through oslo.config's search path, and stats
    them, on every check (~4 % of the service's CPU per boot, three
    checks per status poll); here the rules are (re)loaded at most once
    every ``reload_after`` seconds -- oslo.policy still rereads a file
    only when its mtime changed -- and checks in between use the rules
    in memory. An operator's edit takes effect within that time.
    """

    def __init__(self, conf: cfg.ConfigOpts,
                 reload_after: float = 1.0) -> None:
        self._enforcer = oslo_policy.Enforcer(conf)
        self._enforcer.register_defaults(list_rules())
        self._reload_after = reload_after
        self._loaded_at: float | None = None
        self._reloading = threading.Lock()

    def _fresh(self) -> oslo_policy.Enforcer:
        """The enforcer, its rules reloaded if ``reload_after`` passed."""
        now = time.monotonic()
        due = self._loaded_at is None or \
            now - self._loaded_at >= self._reload_after
        # one thread reloads; the others keep checking against the rules
        # in memory (the first load makes them all wait: there are none)
        if due and self._reloading.acquire(blocking=self._loaded_at is None):
            try:
                if self._loaded_at is None or \
                        now - self._loaded_at >= self._reload_after:
                    self._enforcer.use_conf = True
                    try:
                        self._enforcer.load_rules()
                    finally:
                        # enforce() calls load_rules() on every check:
                        # without use_conf it returns at once
                        self._enforcer.use_conf = False
                    self._loaded_at = time.monotonic()
            finally:
                self._reloading.release()
        return self._enforcer

    def is_admin(self, ctxt: RequestContext) -> bool:
        """Whether ``context_is_admin`` holds for the caller: what Nova
        stores as the context's ``is_admin``, so an operator who redefines
        the admin persona redefines who sees everything."""
        creds = dict(ctxt.to_policy_values())
        creds["is_admin"] = False
        return bool(self._fresh().enforce("context_is_admin", {}, creds))

    def check(self, ctxt: RequestContext, rule: str,
              target: dict | None = None) -> bool:
        target = target if target is not None else {
            "project_id": ctxt.project_id}
        creds = dict(ctxt.to_policy_values())
        creds["is_admin"] = bool(ctxt.is_admin)
        return bool(self._fresh().enforce(rule, target, creds))

    def authorize(self, ctxt: RequestContext, rule: str,
                  target: dict | None = None) -> None:
        if not self.check(ctxt, rule, target):
            raise exception.Forbidden(action=rule)
