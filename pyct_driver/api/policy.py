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
from oslo_log import log as logging
from oslo_policy import _checks
from oslo_policy import policy as oslo_policy

from pyct_driver import exception
from pyct_driver.api.policies import (base, compute, consoles, images,
                                     networking, operator, quotas, resize,
                                     server_extras, servers, rescue, snapshots)
from pyct_driver.context import RequestContext

# Check kinds whose answer depends only on the rules, the target and the
# credentials (not ``http:`` checks, nor any an operator registers)
_PURE = (_checks.RuleCheck, _checks.RoleCheck, _checks.GenericCheck,
         _checks.AndCheck, _checks.OrCheck, _checks.NotCheck,
         _checks.TrueCheck, _checks.FalseCheck)
# answers remembered between reloads; beyond this many, start afresh
_MEMO_MAX = 4096
_OSLO_LOG = logging.getLogger("oslo_policy.policy")

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

    oslo.policy's own evaluation costs ~0.3 ms a check (it inspects each
    check's signature at every node), so while every rule is of a kind
    whose answer is a function of (rule, target, credentials) the answers
    are remembered until the next reload.
    """

    def __init__(self, conf: cfg.ConfigOpts,
                 reload_after: float = 1.0) -> None:
        self._enforcer = oslo_policy.Enforcer(conf)
        self._enforcer.register_defaults(list_rules())
        self._reload_after = reload_after
        self._loaded_at: float | None = None
        self._reloading = threading.Lock()
        self._memo: dict | None = None

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
                    self._memo = {} if all(
                        _pure(c) for c in self._enforcer.rules.values()
                    ) else None
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
        return self._enforce("context_is_admin", {}, creds)

    def check(self, ctxt: RequestContext, rule: str,
              target: dict | None = None) -> bool:
        target = target if target is not None else {
            "project_id": ctxt.project_id}
        creds = dict(ctxt.to_policy_values())
        creds["is_admin"] = bool(ctxt.is_admin)
        return self._enforce(rule, target, creds)

    def _enforce(self, rule: str, target: dict, creds: dict) -> bool:
        enforcer = self._fresh()
        memo = self._memo
        # with oslo.policy's debug log on, every check logs as before
        if memo is None or _OSLO_LOG.isEnabledFor(logging.DEBUG):
            return bool(enforcer.enforce(rule, target, creds))
        try:
            key = (rule, _frozen(target), _frozen(creds))
            return memo[key]
        except TypeError:  # a value that cannot be a key: no memo
            return bool(enforcer.enforce(rule, target, creds))
        except KeyError:
            pass
        answer = bool(enforcer.enforce(rule, target, creds))
        if len(memo) >= _MEMO_MAX:
            memo.clear()
        memo[key] = answer
        return answer

    def authorize(self, ctxt: RequestContext, rule: str,
                  target: dict | None = None) -> None:
        if not self.check(ctxt, rule, target):
            raise exception.Forbidden(action=rule)


def _pure(check: object) -> bool:
    """Whether ``check`` and every check under it is of a ``_PURE`` kind
    (exactly: a subclass may do anything)."""
    if type(check) not in _PURE:
        return False
    children = list(getattr(check, "rules", ()))
    if isinstance(check, _checks.NotCheck):
        children.append(check.rule)
    return all(_pure(c) for c in children)


def _frozen(values: dict) -> tuple:
    """``values`` as a hashable key (lists as tuples); ``TypeError`` if a
    value cannot be one."""
    key = tuple(sorted((k, tuple(v) if isinstance(v, list) else v)
                       for k, v in values.items()))
    hash(key)
    return key
