"""``pyct-status upgrade check`` and ``pyct-manage db version | service
list | image list | flavor list`` against a real deployment.

The commands run as ``python -m`` of the worktree's modules (a fresh
interpreter each, as an operator runs them) against the real PostgreSQL
and a real ``pyct-compute`` over the real RabbitMQ: a database before and
after ``db sync``, with no compute service, with one up and reporting,
and with it stopped past ``service_down_time``; a broken, a JSON and a
typo'd policy file; an unauthenticated API configured off loopback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from tests import dbfixtures
from tests.integration.conftest import FLAVOR_ID, IMAGE_NAME
from tests.services import write_conf

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
HOST = "compute-a"


def _run(module: str, conf: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run(
        [sys.executable, "-m", f"pyct_driver.cmd.{module}",
         "--config-file", conf, *args], capture_output=True, text=True,
        timeout=120, env=env, cwd=ROOT)


def status(conf: str) -> tuple[int, dict[str, tuple[int, str]]]:
    """Exit code and {check: (code, details)} of ``upgrade check --json``."""
    out = _run("status", conf, "upgrade", "check", "--json")
    assert out.returncode in (0, 1, 2), out.stdout + out.stderr
    doc = json.loads(out.stdout)
    assert doc["name"] == "Upgrade Check Results"
    return out.returncode, {c["check"]: (c["result"], c["details"] or "")
                            for c in doc["checks"]}


def manage(conf: str, *args: str) -> str:
    out = _run("manage", conf, *args)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def _with(dep, path: str, **sections) -> str:
    """A copy of the deployment's config with ``sections`` changed."""
    merged = {k: dict(v) for k, v in dep.sections.items()}
    for section, values in sections.items():
        merged.setdefault(section, {}).update(values)
    return write_conf(os.path.join(dep.workdir, path), merged)


def test_fresh_database_fails_until_synced(tmp_path):
    with dbfixtures.make_postgres_url() as url:
        conf = write_conf(str(tmp_path / "pyct.conf"), {
            "DEFAULT": {"state_path": tmp_path,
                        "transport_url": "rabbit://guest:guest@127.0.0.1/"},
            "database": {"connection": url}})
        code, checks = status(conf)
        assert code == 2
        assert checks["Database schema"][0] == 2
        assert "pyct-manage db sync" in checks["Database schema"][1]
        assert manage(conf, "db", "version") == "None\n"
        head = manage(conf, "db", "sync").strip()
        assert manage(conf, "db", "version").strip() == head
        code, checks = status(conf)
        assert checks["Database schema"] == (0, f"Schema at {head}.")
        # no compute yet: a warning, not a failure
        assert checks["Compute services"][0] == 1
        assert checks["Configuration"][0] == 0, checks["Configuration"]
        assert code == 1
        assert manage(conf, "service", "list") == ""


def test_status_and_listings_of_a_running_deployment(pipeline_factory):
    dep = pipeline_factory("postgresql",
                           extra={"DEFAULT": {"service_down_time": 3}})
    compute = dep.start_compute(HOST)
    code, checks = status(dep.conf)
    assert code == 0, checks
    assert checks["Compute services"] == (
        0, "1 compute service(s) up and reporting.")

    [line] = manage(dep.conf, "service", "list").splitlines()
    fields = line.split("\t")
    assert fields[1:5] == ["pyct-compute", HOST, "enabled", "up"]
    assert fields[6] == "-"
    assert manage(dep.conf, "service", "list", "--host", "elsewhere") == ""

    flavors = manage(dep.conf, "flavor", "list").splitlines()
    assert [f.split("\t")[:2] for f in flavors] == [[FLAVOR_ID, "m1.tiny"]]
    assert "vcpus=1\tram=512\tdisk=1" in flavors[0]
    images = [i.split("\t") for i in manage(
        dep.conf, "image", "list").splitlines()]
    assert [(i[0], i[1], i[2]) for i in images] == [
        (dep.image_id, IMAGE_NAME, "active")]

    compute.stop()
    time.sleep(4)  # past service_down_time
    code, checks = status(dep.conf)
    assert code == 2 and checks["Compute services"][0] == 2
    assert f"(down): {HOST}" in checks["Compute services"][1]
    [line] = manage(dep.conf, "service", "list").splitlines()
    assert line.split("\t")[4] == "down"


POLICY_CASES = [
    ("'os_compute_api:servers:index': 'role:admin'\n", 0,
     "1 rule(s) overridden"),
    ("'os_compute_api:servers:indx': 'role:admin'\n", 1, "unknown rules"),
    ("'os_compute_api:servers:index': [unclosed\n", 2, "does not parse"),
    ("'os_compute_api:servers:index': 'rule:nowhere'\n", 2,
     "does not exist"),
]


def test_policy_and_config_checks(pipeline_factory):
    dep = pipeline_factory("postgresql")
    for i, (text, code, words) in enumerate(POLICY_CASES):
        path = os.path.join(dep.workdir, f"policy{i}.yaml")
        with open(path, "w") as f:
            f.write(text)
        conf = _with(dep, f"policy{i}.conf",
                     oslo_policy={"policy_file": path})
        _, checks = status(conf)
        assert checks["Policy rules"][0] == code, (text, checks)
        assert words in checks["Policy rules"][1], (text, checks)

    path = os.path.join(dep.workdir, "policy.json")
    with open(path, "w") as f:
        f.write('{"os_compute_api:servers:index": "role:admin"}')
    conf = _with(dep, "json.conf", oslo_policy={"policy_file": path},
                 api={"listen": "0.0.0.0"})
    code, checks = status(conf)
    assert code == 2
    assert checks["Policy File JSON to YAML Migration"][0] == 2
    assert checks["Configuration"][0] == 2
    assert "noauth" in checks["Configuration"][1]
    conf = _with(dep, "inproc.conf", DEFAULT={"transport_url": "inproc://"},
                 oslo_messaging_notifications={"driver": "messagingv2"})
    _, checks = status(conf)
    assert checks["Configuration"][0] == 1
    assert "only pyct-all-in-one works" in checks["Configuration"][1]
    assert "nobody receives them" in checks["Configuration"][1]
