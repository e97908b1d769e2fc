"""Test helpers that run pyct's services as real processes.

``Deployment`` writes a config file, starts ``pyct-api``, ``pyct-compute``
(any number, each with its own host name) or ``pyct-all-in-one`` as
separate processes, and stops them — by pid, never by name — at teardown.
``clouds_yaml`` and ``sdk_connection``/``openstack`` drive the deployment
with the real, unmodified openstacksdk and openstack CLI.
"""

from __future__ import annotations

import configparser
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import openstack  # the real SDK, unmodified
import openstack.config
import yaml

from tests import openstack_cli

BIN = os.path.dirname(sys.executable)

# see Deployment: the pool of fake-driver deployments
FAKE_POOL = "10.246.0.0/16"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_conf(path: str, sections: dict[str, dict[str, object]]) -> str:
    parser = configparser.RawConfigParser()
    for section, values in sections.items():
        if section != "DEFAULT":
            parser.add_section(section)
        for key, value in values.items():
            parser.set(section, key, str(value))
    with open(path, "w") as f:
        parser.write(f)
    return path


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class ServiceProcess:
    """One pyct console script running with a config file."""

    def __init__(self, script: str, conf: str, log: str,
                 extra: list[str] | None = None,
                 prefix: list[str] | None = None) -> None:
        self.script = script
        self.log = log
        # a restarted service appends to its log; wait_output reads only
        # what this process wrote
        self.log_offset = os.path.getsize(log) if os.path.exists(log) else 0
        self._logf = open(log, "ab")
        # prefix: e.g. nsenter into a test's network namespace (it execs
        # the script, so ``pid`` stays the service's own)
        self.proc = subprocess.Popen(
            [*(prefix or []), os.path.join(BIN, script), "--config-file",
             conf, *(extra or [])],
            stdout=self._logf, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.alive():
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)

    def stop(self, timeout: float = 30.0) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._logf.close()

    def output(self) -> str:
        with open(self.log, errors="replace") as f:
            return f.read()

    def wait_output(self, text: str, timeout: float = 30.0) -> None:
        """Wait until this process logged ``text``; fail if it died."""
        deadline = time.monotonic() + timeout
        while True:
            with open(self.log, "rb") as f:
                f.seek(self.log_offset)
                if text.encode() in f.read():
                    return
            code = self.proc.poll()
            if code is not None or time.monotonic() > deadline:
                why = "timeout" if code is None else f"exited {code}"
                raise AssertionError(
                    f"{self.script} did not log {text!r} ({why}):\n"
                    f"{self.output()[-4000:]}")
            time.sleep(0.1)


class Deployment:
    """A pyct deployment in ``workdir``: config, processes, clients."""

    def __init__(self, workdir: str, db_url: str,
                 transport_url: str | None = None,
                 virt_driver: str = "fake",
                 extra: dict[str, dict[str, object]] | None = None) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.console_port = free_port()  # the all-in-one's serial proxy
        self.db_url = db_url
        self.processes: list[ServiceProcess] = []
        self._cli_ran = False
        sections: dict[str, dict[str, object]] = {
            "DEFAULT": {"state_path": os.path.join(workdir, "state"),
                        "virt_driver": virt_driver, "report_interval": 1,
                        "sync_power_state_interval": 2,
                        "service_down_time": 10},
            "api": {"listen": "127.0.0.1", "port": self.port},
            "database": {"connection": db_url},
            "compute": {"reserved_host_memory_mb": 0,
                        "shutdown_timeout": 5},
            # fake guests make no bridges: their networks come from a
            # range no privileged test's bridges (10.241/16) ever route,
            # so xdist can run them side by side
            "network": {"pool_cidr": FAKE_POOL} if virt_driver == "fake"
            else {},
            "serial_console": {
                "serialproxy_port": self.console_port,
                "base_url": f"ws://127.0.0.1:{self.console_port}/"},
        }
        if transport_url:
            sections["DEFAULT"]["transport_url"] = transport_url
        for section, values in (extra or {}).items():
            sections.setdefault(section, {}).update(values)
        self.sections = sections
        self.conf = write_conf(os.path.join(workdir, "pyct.conf"), sections)

    def conf_for_host(self, host: str,
                      extra: dict[str, dict[str, object]] | None = None
                      ) -> str:
        """Config of the service on ``host``; ``extra`` overrides options
        for that host only (e.g. a slow ``[fake_driver] spawn_delay``)."""
        sections = {k: dict(v) for k, v in self.sections.items()}
        sections["DEFAULT"]["host"] = host
        for section, values in (extra or {}).items():
            sections.setdefault(section, {}).update(values)
        return write_conf(os.path.join(self.workdir, f"pyct-{host}.conf"),
                          sections)

    def manage(self, *args: str) -> str:
        out = subprocess.run(
            [os.path.join(BIN, "pyct-manage"), "--config-file", self.conf,
             *args], check=True, capture_output=True, text=True)
        return out.stdout.strip()

    def start(self, script: str, host: str | None = None,
              extra: dict[str, dict[str, object]] | None = None
              ) -> ServiceProcess:
        conf = self.conf_for_host(host, extra) if host else self.conf
        name = f"{script}-{host or 'main'}"
        proc = ServiceProcess(script, conf,
                              os.path.join(self.workdir, f"{name}.log"))
        self.processes.append(proc)
        if script in ("pyct-api", "pyct-all-in-one"):
            try:
                wait_http(self.endpoint + "/")
            except OSError:
                raise AssertionError(f"{script} did not start:\n"
                                     + proc.output()[-4000:])
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()
        self.processes.clear()

    def clouds_yaml(self) -> str:
        """A clouds.yaml with clouds "user" (demo:demo), "other"
        (other:other) and "admin" (admin:admin) for this endpoint."""
        clouds = {}
        for name, token in (("user", "demo:demo"), ("other", "other:other"),
                            ("admin", "admin:admin")):
            clouds[name] = {
                "auth_type": "admin_token",
                "auth": {"endpoint": f"{self.endpoint}/v2.1",
                         "token": token},
                "compute_endpoint_override": f"{self.endpoint}/v2.1",
                "image_endpoint_override": f"{self.endpoint}/image",
                "identity_endpoint_override": f"{self.endpoint}/identity/v3",
                "network_endpoint_override": f"{self.endpoint}/networking",
                "region_name": "RegionOne",
                "identity_api_version": 3,
            }
        path = os.path.join(self.workdir, "clouds.yaml")
        with open(path, "w") as f:
            yaml.safe_dump({"clouds": clouds}, f)
        return path

    def sdk_connection(self, cloud: str = "user"):
        config = openstack.config.OpenStackConfig(
            config_files=[self.clouds_yaml()])
        return openstack.connection.Connection(
            config=config.get_one(cloud=cloud))

    def openstack(self, *args: str, cloud: str = "user",
                  check: bool = True,
                  timeout: float = 120) -> subprocess.CompletedProcess:
        """Run the real openstack CLI; ``-f json`` output is common."""
        # the first command as the console script's process, the rest in
        # this one (tests.openstack_cli: the same CLI code, seconds less)
        result = openstack_cli.run(["--os-cloud", cloud, *args],
                                   self.clouds_yaml(), timeout,
                                   process=not self._cli_ran)
        self._cli_ran = True
        if check and result.returncode != 0:
            raise AssertionError(
                f"openstack {' '.join(args)} failed ({result.returncode}):"
                f"\n{result.stdout}\n{result.stderr}")
        return result
