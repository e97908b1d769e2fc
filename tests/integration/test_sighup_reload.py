"""SIGHUP reloads the mutable options of running services.

Real processes, started with ``[DEFAULT] debug = false``: the test flips
``debug`` to true in each one's config file and sends SIGHUP to its pid.
DEBUG lines then appear in its log, it keeps serving (API requests made
while the signal lands all succeed; the compute service still builds a
server and answers for the one it had before), and flipping back and
sending SIGHUP again silences them. Checked for ``pyct-api`` with
``pyct-compute`` over the real RabbitMQ, and for ``pyct-all-in-one``; a
logger's level in a ``log_config_append`` file reloads the same way.
"""

from __future__ import annotations

import configparser
import os
import signal
import threading
import time
import urllib.request

import pytest

from tests.integration.conftest import FLAVOR_ID, wait_status, wait_until
from tests.services import Deployment, ServiceProcess

HOST = "compute-a"
DEBUG = " DEBUG "


def _set_debug(path: str, value: bool) -> None:
    parser = configparser.RawConfigParser()
    parser.read(path)
    parser.set("DEFAULT", "debug", str(value).lower())
    with open(path, "w") as f:
        parser.write(f)


def _log_since(proc: ServiceProcess, offset: int) -> str:
    with open(proc.log, errors="replace") as f:
        f.seek(offset)
        return f.read()


def _hup(proc: ServiceProcess) -> int:
    """SIGHUP ``proc``; return where its log stood before."""
    offset = os.path.getsize(proc.log)
    os.kill(proc.pid, signal.SIGHUP)
    wait_until(lambda: "configuration reloaded" in _log_since(proc, offset),
               30, f"{proc.script} to reload")
    return offset


def _hammer(url: str, stop: threading.Event, results: list) -> None:
    """GET ``url`` until told to stop; record each status (or error)."""
    while not stop.is_set():
        req = urllib.request.Request(url, headers={
            "X-Auth-Token": "demo:demo"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                results.append(resp.status)
        except OSError as err:
            results.append(repr(err))


def _get_flavors(dep: Deployment) -> None:
    urllib.request.urlopen(urllib.request.Request(
        f"{dep.endpoint}/v2.1/flavors", headers={
            "X-Auth-Token": "demo:demo"}), timeout=10).close()


def _flip_and_check(dep: Deployment, proc: ServiceProcess, conf: str,
                    noisy: bool) -> str:
    """Set debug=``noisy`` in ``conf``, SIGHUP ``proc`` while requests
    run; return what it logged after the reload."""
    _set_debug(conf, noisy)
    stop, results = threading.Event(), []
    hammer = threading.Thread(target=_hammer, args=(
        f"{dep.endpoint}/v2.1/flavors", stop, results))
    hammer.start()
    try:
        time.sleep(0.3)
        offset = _hup(proc)
        time.sleep(0.3)
    finally:
        stop.set()
        hammer.join(30)
    assert results and set(results) == {200}, results
    assert proc.alive()
    return _log_since(proc, offset)


def _debug_lines(proc: ServiceProcess, offset: int) -> list[str]:
    return [line for line in _log_since(proc, offset).splitlines()
            if DEBUG in line]


def test_api_and_compute_reload_debug(pipeline_factory):
    dep = pipeline_factory("postgresql", extra={"DEFAULT": {"debug": False}})
    [compute] = dep.start_all(HOST)
    api = dep.processes[-1]
    conn = dep.sdk_connection("user")
    before = conn.compute.create_server(
        name="before", image_id=dep.image_id, flavor_id=FLAVOR_ID,
        networks="none")
    wait_status(conn, before.id, "ACTIVE")
    assert DEBUG not in api.output() and DEBUG not in compute.output()

    after_api = _flip_and_check(dep, api, dep.conf, True)
    compute_conf = os.path.join(dep.workdir, f"pyct-{HOST}.conf")
    _set_debug(compute_conf, True)
    mark = _hup(compute)
    # the API logs its requests' details at DEBUG now
    offset = os.path.getsize(api.log)
    conn.compute.get_server(before.id)
    wait_until(lambda: _debug_lines(api, offset), 10,
               "a DEBUG line from pyct-api")
    assert "debug=True" in after_api
    # the compute service still serves: a new build, the old guest's
    # console (held in that process), DEBUG lines of its own
    server = conn.compute.create_server(
        name="after", image_id=dep.image_id, flavor_id=FLAVOR_ID,
        networks="none")
    wait_status(conn, server.id, "ACTIVE")
    out = conn.compute.get_server_console_output(before.id)["output"]
    assert "before login:" in out
    wait_until(lambda: _debug_lines(compute, mark), 20,
               "a DEBUG line from pyct-compute")

    # and back: quiet again
    _flip_and_check(dep, api, dep.conf, False)
    offset = os.path.getsize(api.log)
    conn.compute.get_server(before.id)
    time.sleep(0.5)
    assert _debug_lines(api, offset) == []


def test_all_in_one_reloads_debug(tmp_path):
    dep = Deployment(str(tmp_path), f"sqlite:///{tmp_path}/pyct.sqlite",
                     extra={"DEFAULT": {"debug": False},
                            "metadata": {"port": 0}})
    try:
        proc = dep.start("pyct-all-in-one")
        proc.wait_output("compute service on")
        assert DEBUG not in proc.output()
        _flip_and_check(dep, proc, dep.conf, True)
        offset = os.path.getsize(proc.log)
        _get_flavors(dep)
        wait_until(lambda: _debug_lines(proc, offset), 10,
                   "a DEBUG line from pyct-all-in-one")
    finally:
        dep.stop_all()


@pytest.mark.parametrize("garbage", ["[DEFAULT\ndebug = true\n"])
def test_a_broken_file_keeps_the_running_configuration(tmp_path, garbage):
    dep = Deployment(str(tmp_path), f"sqlite:///{tmp_path}/pyct.sqlite",
                     extra={"DEFAULT": {"debug": False}})
    try:
        dep.manage("db", "sync")
        proc = dep.start("pyct-api")
        with open(dep.conf, "a") as f:
            f.write(garbage)
        offset = os.path.getsize(proc.log)
        os.kill(proc.pid, signal.SIGHUP)
        wait_until(lambda: "could not reload the configuration"
                   in _log_since(proc, offset), 30, "the reload to fail")
        assert proc.alive()
        _get_flavors(dep)
        assert _debug_lines(proc, offset) == []
    finally:
        dep.stop_all()


LOGGING_CONF = """[loggers]
keys = root, api

[handlers]
keys = stderr

[formatters]
keys = plain

[logger_root]
level = INFO
handlers = stderr

[logger_api]
level = {level}
handlers =
qualname = pyct_driver.api.app

[handler_stderr]
class = StreamHandler
args = (sys.stderr,)
formatter = plain

[formatter_plain]
format = %(levelname)s %(name)s %(message)s
"""


def test_log_levels_of_a_logging_config_file_reload(tmp_path):
    """One logger's level, set in ``log_config_append``'s file, changes on
    SIGHUP while the rest stays at INFO."""
    logging_conf = tmp_path / "logging.conf"
    logging_conf.write_text(LOGGING_CONF.format(level="INFO"))
    dep = Deployment(str(tmp_path), f"sqlite:///{tmp_path}/pyct.sqlite",
                     extra={"DEFAULT": {"log_config_append": logging_conf}})
    try:
        dep.manage("db", "sync")
        proc = dep.start("pyct-api")
        _get_flavors(dep)
        assert "DEBUG" not in proc.output()
        logging_conf.write_text(LOGGING_CONF.format(level="DEBUG"))
        later = time.time() + 2  # a new mtime even on a coarse clock
        os.utime(logging_conf, (later, later))
        offset = os.path.getsize(proc.log)
        os.kill(proc.pid, signal.SIGHUP)
        wait_until(lambda: "configuration reloaded" in _log_since(
            proc, offset), 30, "pyct-api to reload")
        _get_flavors(dep)
        debug = wait_until(lambda: [
            line for line in _log_since(proc, offset).splitlines()
            if line.startswith("DEBUG ")], 10, "a DEBUG line")
        assert all(line.startswith("DEBUG pyct_driver.api.app ")
                   for line in debug), debug
        assert proc.alive()
    finally:
        dep.stop_all()
