"""devstack/plugin.sh against recording stand-ins of devstack's helpers.

Each phase runs as devstack runs it: a fresh bash sources the helpers
(tests/fixtures/devstack_standins.sh), then devstack/settings and
devstack/plugin.sh with the phase's arguments. The test checks the
helpers each phase called, in order, and the files it wrote (pyct.conf,
tempest.conf, clouds.yaml). ``run_phase`` is shared with the integration
test that runs the written configuration against a real Keystone.
"""

from __future__ import annotations

import configparser
import os
import subprocess
import sys

import pytest

from pyct_driver.api import microversion

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
STANDINS = os.path.join(REPO, "tests", "fixtures", "devstack_standins.sh")
PHASES = (("stack", "pre-install"), ("stack", "install"),
          ("stack", "post-config"), ("stack", "extra"),
          ("stack", "test-config"), ("unstack",), ("clean",))


class Devstack:
    """A fake devstack environment in ``root``: variables, stand-ins and a
    ``bin`` whose pyct-manage records (or, ``real_manage``, runs)."""

    def __init__(self, root: str, services: str, real_manage: bool = False,
                 **env: str) -> None:
        self.root = root
        self.record = os.path.join(root, "record.tsv")
        self.bin = os.path.join(root, "bin")
        os.makedirs(self.bin, exist_ok=True)
        manage = os.path.join(self.bin, "pyct-manage")
        with open(manage, "w") as f:
            if real_manage:
                f.write(f'#!/bin/sh\nexec {sys.executable} -m '
                        f'pyct_driver.cmd.manage "$@"\n')
            else:
                f.write(f'#!/bin/sh\nprintf "pyct-manage\\t%s\\n" "$*" '
                        f'>> {self.record}\n')
        os.chmod(manage, 0o755)
        self.env = {
            "PATH": os.environ["PATH"],
            "PYTHONPATH": REPO,
            "HOME": root,
            "DEST": root, "DATA_DIR": os.path.join(root, "data"),
            "PYCT_DIR": REPO,
            "PYCT_CONF_DIR": os.path.join(root, "etc-pyct"),
            "STACK_USER": str(os.getuid()),
            "SERVICE_HOST": "127.0.0.1", "SERVICE_PROTOCOL": "http",
            "REGION_NAME": "RegionOne",
            "ENABLED_SERVICES": services,
            "ENABLE_DEBUG_LOG_LEVEL": "True",
            "KEYSTONE_SERVICE_URI": "http://127.0.0.1/identity",
            "SERVICE_PASSWORD": "secretservice",
            "SERVICE_PROJECT_NAME": "service",
            "SERVICE_DOMAIN_NAME": "Default",
            "SSL_BUNDLE_FILE": "", "MEMCACHE_SERVERS": "",
            "TEMPEST_CONFIG": os.path.join(root, "tempest.conf"),
            "PYTHON": sys.executable,
            "STANDIN_RECORD": self.record, "STANDIN_BIN": self.bin,
            "STANDIN_PYTHON": sys.executable,
            "STANDIN_TRANSPORT_URL": "rabbit://stackrabbit:pw@127.0.0.1:5672/",
            "STANDIN_DATABASE_URL":
                "mysql+pymysql://root:pw@127.0.0.1/pyct?charset=utf8",
            **env,
        }
        self.conf = os.path.join(self.env["PYCT_CONF_DIR"], "pyct.conf")

    def run_phase(self, *phase: str) -> list[list[str]]:
        """Run one phase; the calls it made (each [name, args...])."""
        if os.path.exists(self.record):
            os.unlink(self.record)
        script = (f"set -e\nsource {STANDINS}\n"
                  f"source {REPO}/devstack/settings\n"
                  f"source {REPO}/devstack/plugin.sh {' '.join(phase)}\n")
        run = subprocess.run(["bash", "-c", script], env=self.env,
                             capture_output=True, text=True, timeout=300,
                             cwd=self.root)
        assert run.returncode == 0, (phase, run.stdout, run.stderr)
        if not os.path.exists(self.record):
            return []
        with open(self.record) as f:
            return [line.rstrip("\n").split("\t") for line in f]

    def ini(self, path: str | None = None) -> configparser.RawConfigParser:
        parser = configparser.RawConfigParser()
        parser.optionxform = str
        assert parser.read(path or self.conf)
        return parser


def _calls(calls, *names):
    return [c for c in calls if c[0] in names]


KEYSTONE_CLOUD = "keystone,mysql,rabbit,g-api,pyct-api,pyct-compute,tempest"


@pytest.fixture
def devstack(tmp_path):
    return Devstack(str(tmp_path), KEYSTONE_CLOUD)


def test_pre_install_and_install(devstack):
    assert devstack.run_phase("stack", "pre-install") == [
        ["define_plugin", "pyct"],
        ["install_package", "busybox-static", "e2fsprogs", "util-linux",
         "nftables", "python3-nftables"]]
    calls = devstack.run_phase("stack", "install")
    assert calls[1:] == [
        ["setup_develop", REPO],
        ["sudo", "install", "-m", "644",
         f"{REPO}/etc/sysctl.d/60-pyct.conf", "/etc/sysctl.d/"],
        ["sudo", "sysctl", "-q", "-p", "/etc/sysctl.d/60-pyct.conf"]]


def test_post_config_in_a_keystone_cloud(devstack):
    calls = devstack.run_phase("stack", "post-config")
    conf = devstack.ini()
    assert conf.get("DEFAULT", "transport_url") == \
        "rabbit://stackrabbit:pw@127.0.0.1:5672/"
    assert conf.get("database", "connection") == \
        "mysql+pymysql://root:pw@127.0.0.1/pyct?charset=utf8"
    assert ["database_connection_url", "pyct"] in calls
    assert {k: v for k, v in conf.items("api")
            if k not in conf.defaults()} == {
        "listen": "127.0.0.1", "port": "8774",
        "public_endpoint": "http://127.0.0.1:8774",
        "auth_strategy": "keystone"}
    auth = dict(conf.items("keystone_authtoken"))
    assert auth["auth_type"] == "password"
    assert auth["username"] == "pyct"
    assert auth["password"] == "secretservice"
    assert auth["project_name"] == "service"
    assert auth["www_authenticate_uri"] == "http://127.0.0.1/identity"
    assert auth["auth_url"] == "http://127.0.0.1/identity"
    assert ["configure_keystone_authtoken_middleware", devstack.conf,
            "pyct"] in calls
    keystone = _calls(calls, "create_service_user", "get_or_create_user",
                      "get_or_add_user_project_role", "get_or_create_role",
                      "get_or_create_service", "get_or_create_endpoint")
    url = "http://127.0.0.1:8774"
    assert keystone == [
        ["create_service_user", "pyct"],
        ["get_or_create_user", "pyct", "secretservice", "Default"],
        ["get_or_add_user_project_role", "service", "pyct", "service",
         "Default", "Default"],
        ["get_or_create_role", "reader"],
        ["get_or_create_role", "member"],
        ["get_or_create_service", "pyct", "compute",
         "Compute service (pyct)"],
        ["get_or_create_endpoint", "compute", "RegionOne", f"{url}/v2.1",
         f"{url}/v2.1", f"{url}/v2.1"],
        # g-api runs: Glance keeps the image type; no Neutron: pyct's
        ["get_or_create_service", "pyct-network", "network",
         "network service subset of pyct"],
        ["get_or_create_endpoint", "network", "RegionOne",
         f"{url}/networking", f"{url}/networking", f"{url}/networking"]]
    assert calls[-2:] == [
        ["recreate_database", "pyct"],
        ["pyct-manage", f"--config-file {devstack.conf} db sync"]]
    assert not os.path.exists(os.path.join(devstack.env["PYCT_CONF_DIR"],
                                           "clouds.yaml"))


def test_extra_starts_both_services_after_the_demo_data(devstack):
    calls = devstack.run_phase("stack", "extra")
    conf = devstack.conf
    manage = [c[1] for c in _calls(calls, "pyct-manage")]
    assert manage == [
        f"--config-file {conf} flavor create m1.tiny --id 1 --vcpus 1 "
        f"--ram 512 --disk 1 --if-missing",
        f"--config-file {conf} flavor create m1.small --id 2 --vcpus 1 "
        f"--ram 2048 --disk 20 --if-missing"]
    assert ["sudo", f"{devstack.bin}/pyct-manage", "--config-file", conf,
            "image", "create-busybox", "busybox", "--if-missing"] in calls
    assert _calls(calls, "run_process") == [
        ["run_process", "pyct-api",
         f"{devstack.bin}/pyct-api --config-file {conf}"],
        ["run_process", "pyct-compute",
         f"{devstack.bin}/pyct-compute --config-file {conf}", "root",
         "root"]]


def test_test_config_matches_pyct_features(devstack):
    devstack.run_phase("stack", "test-config")
    tempest = devstack.ini(devstack.env["TEMPEST_CONFIG"])
    assert tempest.get("compute", "max_microversion") == \
        "%d.%d" % microversion.MAX_VERSION
    assert tempest.get("compute", "min_microversion") == "2.1"
    features = dict(tempest.items("compute-feature-enabled"))
    for on in ("console_output", "pause", "interface_attach",
               "config_drive", "metadata_service", "resize",
               "change_password", "suspend", "rescue"):
        assert features.pop(on) == "True", on
    assert set(features.values()) == {"False"}
    assert {"snapshot", "shelve", "stable_rescue", "live_migration",
            "cold_migration", "vnc_console"} <= set(features)


def test_unstack_and_clean(devstack):
    assert _calls(devstack.run_phase("unstack"), "stop_process") == [
        ["stop_process", "pyct-api"], ["stop_process", "pyct-compute"]]
    calls = devstack.run_phase("clean")
    assert calls[1:] == [["sudo", "rm", "-rf", devstack.env["DATA_DIR"]
                          + "/pyct", devstack.env["PYCT_CONF_DIR"]]]


def test_without_keystone_noauth_and_no_accounts(tmp_path):
    ds = Devstack(str(tmp_path), "mysql,pyct-api,pyct-compute",
                  SERVICE_HOST="127.0.0.1")
    calls = ds.run_phase("stack", "post-config")
    assert ds.ini().get("api", "auth_strategy") == "noauth"
    assert not ds.ini().has_section("keystone_authtoken")
    assert _calls(calls, "create_service_user", "get_or_create_service",
                  "get_or_create_endpoint") == []
    assert os.path.exists(os.path.join(ds.env["PYCT_CONF_DIR"],
                                       "clouds.yaml"))
    # test-config without tempest writes nothing
    ds.run_phase("stack", "test-config")
    assert not os.path.exists(ds.env["TEMPEST_CONFIG"])


def test_image_and_network_subsets_follow_the_settings(tmp_path):
    ds = Devstack(str(tmp_path), "keystone,pyct-api,pyct-compute",
                  PYCT_REGISTER_IMAGE="True", PYCT_REGISTER_NETWORK="False")
    services = [c[2] for c in _calls(ds.run_phase("stack", "post-config"),
                                     "get_or_create_service")]
    assert services == ["compute", "image"]


def test_every_phase_does_nothing_when_pyct_is_not_enabled(tmp_path):
    ds = Devstack(str(tmp_path), "keystone,mysql,n-api,n-cpu")
    for phase in PHASES:
        assert ds.run_phase(*phase) == [["define_plugin", "pyct"]], phase
    assert not os.path.exists(ds.conf)


def test_serial_console_proxy_runs_when_enabled(tmp_path):
    devstack = Devstack(str(tmp_path), KEYSTONE_CLOUD + ",pyct-serialproxy")
    conf = devstack.conf
    assert _calls(devstack.run_phase("stack", "extra"), "run_process")[-1] \
        == ["run_process", "pyct-serialproxy",
            f"{devstack.bin}/pyct-serialproxy --config-file {conf}"]
    assert _calls(devstack.run_phase("unstack"), "stop_process")[-1] == \
        ["stop_process", "pyct-serialproxy"]


NOVA_CLOUD = "keystone,mysql,rabbit,g-api,n-api,n-cond,n-sch,n-cpu," \
    "placement-api,q-svc"


def _recording_shim(ds: Devstack) -> None:
    shim = os.path.join(ds.bin, "pyct-nova-shim")
    with open(shim, "w") as f:
        f.write(f'#!/bin/sh\nprintf "%s\\t%s\\n" "$0" "$*" '
                f'>> {ds.record}\n')
    os.chmod(shim, 0o755)


def test_nova_driver_mode_runs_pyct_under_devstacks_nova(tmp_path):
    nova_cpu_conf = str(tmp_path / "nova-cpu.conf")
    ds = Devstack(str(tmp_path), NOVA_CLOUD, PYCT_MODE="nova-driver",
                  NOVA_CPU_CONF=nova_cpu_conf)
    _recording_shim(ds)
    assert ds.run_phase("stack", "pre-install")[1:] == [
        ["install_package", "busybox-static", "e2fsprogs", "util-linux",
         "nftables", "python3-nftables"]]
    calls = ds.run_phase("stack", "install")
    assert calls[1] == ["setup_develop", REPO]
    assert calls[-1] == [f"{ds.bin}/pyct-nova-shim", "install"]
    ds.run_phase("stack", "post-config")
    conf = ds.ini(nova_cpu_conf)
    assert conf.get("DEFAULT", "compute_driver") == "pyct.PyctDriver"
    assert conf.get("pyct", "state_path") == ds.env["DATA_DIR"] + "/pyct"
    assert not os.path.exists(ds.conf)   # no pyct.conf: Nova's config
    assert _calls(ds.run_phase("stack", "extra"), "stop_process",
                  "run_process") == [
        ["stop_process", "n-cpu"],
        ["run_process", "n-cpu",
         f"{ds.bin}/nova-compute --config-file {nova_cpu_conf}", "root",
         "root"]]
    assert ds.run_phase("stack", "test-config")[1:] == []
    assert ds.run_phase("unstack")[1:] == []
    assert ds.run_phase("clean")[1:] == [
        [f"{ds.bin}/pyct-nova-shim", "remove"],
        ["sudo", "rm", "-rf", ds.env["DATA_DIR"] + "/pyct"]]


def test_nova_driver_mode_does_nothing_on_hosts_without_n_cpu(tmp_path):
    ds = Devstack(str(tmp_path), "keystone,mysql,n-api,n-cond",
                  PYCT_MODE="nova-driver")
    for phase in PHASES:
        assert ds.run_phase(*phase) == [["define_plugin", "pyct"]], phase
