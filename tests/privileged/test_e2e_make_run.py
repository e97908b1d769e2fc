"""End to end: the README's `make run` flow, then the openstack CLI with
etc/pyct/clouds.yaml.

The commands come from the Makefile itself (``make_run_fixtures``), so
this test follows the Makefile when it changes: the config it writes, the
pyct-manage set-up commands (run twice: `make run` again must be harmless)
and the all-in-one command line. Two additions, both forced by the shared
test host: a unique [container] cgroup_parent, and -- only when something
already listens on 127.0.0.1:8774 -- another port plus a copy of clouds.yaml
pointing at it. The flow is quiet: every pyct-manage command writes
nothing to stderr, and the all-in-one's log holds no third-party warning,
one line per API request, one per instance state change and its few
start-up lines.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import subprocess
import sys
import time

import yaml

from pyct_driver import conf as pyct_conf
from tests.privileged.e2e_fixtures import E2E, timing
from tests.privileged.make_run_fixtures import MakeRun, REPO
from tests.services import free_port

CLOUDS = os.path.join(REPO, "etc", "pyct", "clouds.yaml")
BIN = os.path.dirname(sys.executable)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _cli(clouds: str, cloud: str, *args: str) -> str:
    env = dict(os.environ, OS_CLIENT_CONFIG_FILE=clouds)
    result = subprocess.run([os.path.join(BIN, "openstack"),
                             "--os-cloud", cloud, *args], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def test_make_run_flow_and_clouds_yaml():
    env = E2E("makerun")
    try:
        _run(env)
    finally:
        env.close()


def _run(env: E2E) -> None:
    run = MakeRun(env)
    port = 8774
    extra = {"container": {"cgroup_parent": env.parent}}
    clouds = CLOUDS
    if not _port_free(port):
        port = free_port()
        extra["api"] = {"port": port}
        with open(CLOUDS) as f:
            text = f.read().replace("127.0.0.1:8774", f"127.0.0.1:{port}")
        clouds = os.path.join(env.tmp, "clouds.yaml")
        with open(clouds, "w") as f:
            f.write(text)
    print(f"\nE2E-NOTE make run flow on port {port} "
          f"({'etc/pyct/clouds.yaml' if clouds == CLOUDS else clouds})")
    # `make run` twice must not fail or duplicate; quiet (see prepare)
    written = run.prepare(extra, port, runs=2)
    assert "virt_driver = container" in written, written  # we are root
    # Its networks stay clear of every pool the suite's networks come from
    # (the default one, pick_pool's 10.200-249.0.0/16): the API refuses a
    # pool a host route overlaps, so a `make run` guest with a port on the
    # default pool failed every test that makes a network.
    pool = ipaddress.IPv4Network(
        re.search(r"pool_cidr = (\S+)", written).group(1))
    default, = (o.default for o in pyct_conf.network_opts
                if o.name == "pool_cidr")
    suite = [ipaddress.IPv4Network(default)] + [
        ipaddress.IPv4Network(f"10.{i}.0.0/16") for i in range(200, 250)]
    assert not any(pool.overlaps(net) for net in suite), (pool, written)
    proc = run.start()

    with open(clouds) as f:
        assert {"pyct-local", "pyct-admin"} <= set(yaml.safe_load(f)
                                                   ["clouds"])
    assert _cli(clouds, "pyct-local", "server", "list", "-f", "value") == ""
    flavors = _cli(clouds, "pyct-local", "flavor", "list", "-f", "value",
                   "-c", "Name").split()
    assert sorted(flavors) == ["m1.small", "m1.tiny"], flavors
    images = _cli(clouds, "pyct-local", "image", "list", "-f", "value",
                  "-c", "Name").split()
    assert images == ["busybox"], images


    t0 = time.monotonic()
    _cli(clouds, "pyct-local", "server", "create", "--image", "busybox",
         "--flavor", "m1.tiny", "--nic", "none", "--wait", "hello")
    timing("make-run flow: CLI server create --wait", time.monotonic() - t0)
    listed = _cli(clouds, "pyct-admin", "server", "list", "--all-projects",
                  "-f", "value", "-c", "Name", "-c", "Status").split()
    assert listed == ["hello", "ACTIVE"], listed
    assert "pyct busybox guest booting" in _cli(
        clouds, "pyct-local", "console", "log", "show", "hello")
    _cli(clouds, "pyct-local", "server", "delete", "--wait", "hello")
    assert _cli(clouds, "pyct-local", "server", "list", "-f", "value") == ""
    _check_log(proc.output())


def _check_log(log: str) -> None:
    """No third-party warning; at INFO one line per request and one per
    state change, and only the few start-up lines besides."""
    lines = log.splitlines()
    third_party = [ln for ln in lines if re.search(r"\w+Warning\b", ln)
                   or not re.match(r"^\S+ \S+ \d+ [A-Z]+ pyct_driver\.", ln)]
    assert not third_party, "\n".join(third_party)
    requests = [ln for ln in lines if " pyct_driver.api.request_log " in ln]
    states = [ln for ln in lines if " pyct_driver.db.instances " in ln]
    assert len(states) == 5, "\n".join(states)  # 3 for the boot, 2 delete
    consoles = [ln for ln in lines if re.search(
        r" INFO pyct_driver\.\S+ \[-\] serial console(s attach| proxy) on ",
        ln)]
    assert len(consoles) == 2, "\n".join(lines[:12])
    rest = [ln for ln in lines
            if ln not in requests and ln not in states and ln not in consoles]
    # compute service started, API listening, the metadata service's word,
    # the guest-view service (lxcfs) started
    assert len(rest) <= 4, "\n".join(rest)
    print(f"\nE2E-NOTE all-in-one log: {len(lines)} lines, {len(requests)} "
          f"requests, {len(states)} state changes")
