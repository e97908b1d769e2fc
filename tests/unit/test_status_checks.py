"""``pyct-status`` checks in process, for the cases a real deployment of
today cannot show (a deprecated rule, every configuration verdict); the
command itself runs in tests/integration/test_operator_tools.py."""

from __future__ import annotations

import pytest
from oslo_config import cfg
from oslo_policy import opts as policy_opts
from oslo_policy import policy as oslo_policy
from oslo_upgradecheck import upgradecheck

from pyct_driver import conf as pyct_conf
from pyct_driver.api import policy as api_policy
from pyct_driver.cmd import status
from pyct_driver.rpc import transport as rpc_transport


def _conf(tmp_path, **overrides) -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    for group, opts in pyct_conf.list_opts():
        conf.register_opts(opts, group=group)
    rpc_transport.register_opts(conf)
    for group, opts in policy_opts.list_opts():
        conf.register_opts(opts, group=group)
    conf([], default_config_files=[])
    conf.set_override("connection", f"sqlite:///{tmp_path}/x.sqlite",
                      "database")
    conf.set_override("transport_url", "rabbit://guest:guest@127.0.0.1/")
    for key, value in overrides.items():
        group, _, name = key.rpartition("__")
        conf.set_override(name, value, group=group or None)
    return conf


def test_an_overridden_deprecated_rule_warns(tmp_path, monkeypatch):
    new = oslo_policy.RuleDefault(
        "os_compute_api:servers:index", "role:admin",
        deprecated_rule=oslo_policy.DeprecatedRule(
            "compute:get_all", "role:admin", deprecated_reason="renamed",
            deprecated_since="X"))
    monkeypatch.setattr(api_policy, "list_rules", lambda: [new])
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text("'compute:get_all': 'role:admin'\n")
    conf = _conf(tmp_path, oslo_policy__policy_file=str(policy_file))
    result = status.Checks(conf)._policy()
    assert result.code == upgradecheck.Code.WARNING
    assert "compute:get_all is deprecated: set os_compute_api:servers:index" \
        in result.details


def test_no_policy_file_is_fine(tmp_path):
    conf = _conf(tmp_path, oslo_policy__policy_file=str(
        tmp_path / "absent.yaml"))
    assert status.Checks(conf)._policy().code == upgradecheck.Code.SUCCESS


@pytest.mark.parametrize("overrides,code,words", [
    ({}, upgradecheck.Code.WARNING, "SQLite"),
    ({"api__listen": "::1"}, upgradecheck.Code.WARNING, "SQLite"),
    ({"api__listen": "localhost"}, upgradecheck.Code.WARNING, "SQLite"),
    ({"api__listen": "10.0.0.5"}, upgradecheck.Code.FAILURE, "noauth"),
    ({"api__listen": "api.example.org"}, upgradecheck.Code.FAILURE,
     "noauth"),
    ({"api__listen": "10.0.0.5", "api__allow_noauth_off_loopback": True},
     upgradecheck.Code.WARNING, "SQLite"),
    ({"api__listen": "10.0.0.5", "api__auth_strategy": "keystone"},
     upgradecheck.Code.WARNING, "SQLite"),
    ({"transport_url": "inproc://"}, upgradecheck.Code.WARNING,
     "only pyct-all-in-one works"),
    ({"oslo_messaging_notifications__driver": ["messagingv2"],
      "oslo_messaging_notifications__transport_url": "fake://"},
     upgradecheck.Code.WARNING, "nobody receives them"),
    ({"database__connection": "postgresql://u@db/pyct"},
     upgradecheck.Code.SUCCESS, None),
])
def test_configuration_verdicts(tmp_path, overrides, code, words):
    conf = _conf(tmp_path, **overrides)
    result = status.Checks(conf)._config()
    assert result.code == code, result.details
    if words:
        assert words in result.details
