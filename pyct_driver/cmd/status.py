"""``pyct-status upgrade check``: is this deployment ready to serve?

The operator's pre-flight after an install or an upgrade, through
oslo.upgradecheck like ``nova-status``: each check answers Success,
Warning or Failure with what to do, and the exit status is the worst
(0, 1, 2; 255 when a check itself broke). ``--json`` prints the results
as JSON. The checks: the database schema is at the migrations' head; at
least one compute service is registered, reporting (heartbeat within
``service_down_time``) and has reported its resources; the policy file,
if any, parses, is YAML, names only known rules and overrides no
deprecated one; and the configuration is sane (no unauthenticated API
off loopback, a message bus other processes can reach for a split
deployment, a database other hosts can share, notifications that can
reach a consumer).
"""

from __future__ import annotations

# first: eventlet must be unimportable before any oslo library loads
from pyct_driver import no_eventlet  # noqa: F401,I100

import sys

from oslo_config import cfg
from oslo_policy import policy as oslo_policy
from oslo_upgradecheck import common_checks, upgradecheck

from pyct_driver import exception
from pyct_driver.api import auth
from pyct_driver.api import policy as api_policy
from pyct_driver.cmd import bootstrap
from pyct_driver.compute.service import BINARY as COMPUTE_BINARY
from pyct_driver.db import migration
from pyct_driver.db import services as db_services

Result = upgradecheck.Result
Code = upgradecheck.Code
# transports whose messages stay in one process (the all-in-one's)
_LOCAL_BUSES = ("inproc:", "fake:")


class Checks(upgradecheck.UpgradeCommands):
    """pyct's upgrade checks; each reads the configuration it was given."""

    def __init__(self, conf: cfg.ConfigOpts = bootstrap.CONF) -> None:
        self.conf = conf

    def _schema(self) -> Result:
        url = self.conf.database.connection
        try:
            current, head = migration.current(url), migration.head()
        except exception.PyctError as err:
            return Result(Code.FAILURE, f"Cannot read the database schema "
                                        f"version: {err.message}")
        if current is None:
            return Result(Code.FAILURE, "The database has no schema: run "
                                        "`pyct-manage db sync`.")
        if current != head:
            return Result(Code.FAILURE, f"The database schema is at "
                                        f"{current}, the code needs {head}: "
                                        "run `pyct-manage db sync`.")
        return Result(Code.SUCCESS, f"Schema at {head}.")

    def _computes(self) -> Result:
        try:
            db = bootstrap.database(self.conf)
            try:
                services = db_services.service_list(db, COMPUTE_BINARY)
                nodes = {n["host"] for n in db_services.compute_node_list(db)}
            finally:
                db.dispose()
        except Exception as err:  # noqa: BLE001 - the check's answer
            return Result(Code.FAILURE, f"Cannot list compute services: "
                                        f"{err}")
        if not services:
            return Result(Code.WARNING, "No compute service is registered: "
                                        "servers cannot be scheduled until a "
                                        "pyct-compute has started.")
        down_time = self.conf.service_down_time
        down = [s["host"] for s in services
                if not db_services.is_up(s, down_time)]
        silent = [s["host"] for s in services if s["host"] not in nodes]
        problems = []
        if down:
            problems.append(f"not reporting for over {down_time}s (down): "
                            f"{', '.join(sorted(down))}")
        if silent:
            problems.append("no resource report yet: "
                            f"{', '.join(sorted(silent))}")
        if len(down) == len(services):
            return Result(Code.FAILURE, "No compute service is up; "
                                        + "; ".join(problems))
        if problems:
            return Result(Code.WARNING, "Compute services " + "; ".join(
                problems))
        return Result(Code.SUCCESS, f"{len(services)} compute service(s) "
                                    "up and reporting.")

    def _policy_json(self) -> Result:
        return common_checks.check_policy_json(self, self.conf)

    def _policy(self) -> Result:
        defaults = api_policy.list_rules()
        enforcer = oslo_policy.Enforcer(self.conf)
        enforcer.register_defaults(defaults)
        try:
            enforcer.load_rules(force_reload=True)
        except Exception as err:  # noqa: BLE001 - YAML or check syntax
            return Result(Code.FAILURE, f"The policy file does not parse: "
                                        f"{err}")
        if not enforcer.check_rules(raise_on_violation=False):
            return Result(Code.FAILURE, "A policy rule refers to a rule "
                                        "that does not exist or to itself "
                                        "(see the log above).")
        known = {rule.name for rule in defaults}
        overridden = set(enforcer.file_rules)
        notes = []
        unknown = sorted(overridden - known)
        if unknown:
            notes.append(f"unknown rules (typos, or rules of another "
                         f"service): {', '.join(unknown)}")
        for rule in defaults:
            old = getattr(rule, "deprecated_rule", None)
            if old is not None and old.name in overridden:
                notes.append(f"{old.name} is deprecated: set {rule.name}")
            if getattr(rule, "deprecated_for_removal", False) and \
                    rule.name in overridden:
                notes.append(f"{rule.name} is deprecated for removal")
        if notes:
            return Result(Code.WARNING, "Policy file: " + "; ".join(notes))
        return Result(Code.SUCCESS, f"{len(overridden & known)} rule(s) "
                                    "overridden, all known.")

    def _config(self) -> Result:
        conf = self.conf
        try:
            auth.check_listen(conf.api.auth_strategy, conf.api.listen,
                              conf.api.allow_noauth_off_loopback)
        except exception.InvalidInput as err:
            return Result(Code.FAILURE, err.message)
        notes = []
        bus = conf.transport_url or ""
        if not bus or bus.startswith(_LOCAL_BUSES):
            notes.append("no message bus other processes can reach "
                         "([DEFAULT] transport_url): only pyct-all-in-one "
                         "works; pyct-api and pyct-compute need rabbit://")
        if conf.database.connection.startswith("sqlite"):
            notes.append("[database] connection is SQLite: one host only")
        drivers = [d for d in conf.oslo_messaging_notifications.driver
                   if d != "noop"]
        note_bus = conf.oslo_messaging_notifications.transport_url or bus
        if drivers and note_bus.startswith(_LOCAL_BUSES):
            notes.append("notifications are configured but go to an "
                         "in-process bus: nobody receives them")
        if notes:
            return Result(Code.WARNING, "; ".join(notes))
        return Result(Code.SUCCESS)

    _upgrade_checks = (
        ("Database schema", _schema),
        ("Compute services", _computes),
        ("Policy File JSON to YAML Migration", _policy_json),
        ("Policy rules", _policy),
        ("Configuration", _config),
    )


def main(argv: list[str] | None = None) -> int:
    conf = bootstrap.CONF
    checks = Checks(conf)
    upgradecheck.register_cli_options(conf, checks)
    bootstrap.parse_args(argv if argv is not None else sys.argv,
                         log_to_stderr=True)
    # where oslo.upgradecheck looks for --json (its own main() sets it)
    upgradecheck.CONF = conf
    return upgradecheck.run(conf)


if __name__ == "__main__":
    sys.exit(main())
