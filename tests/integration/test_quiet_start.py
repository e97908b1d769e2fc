"""The console scripts start, work and stop without third-party noise.

``pyct-manage --help`` and ``pyct-manage db version|sync`` write nothing to
stderr; ``pyct-all-in-one`` and ``pyct-api`` + ``pyct-compute`` over the
real RabbitMQ print no warning from start to stop; and at INFO the
all-in-one logs one line per API request (Nova's format, with the request
id) and one per instance state change, and nothing else. A request's line
names its caller only once authenticated (a token-less request claiming
``X-User-Id: mallory`` is refused before authentication and logged
without a user), and a path with an encoded newline stays on its own line
(re-quoted). Before, every
one of them printed eight ``CryptographyDeprecationWarning: DSA is
deprecated`` lines and eventlet's nine-line deprecation notice (futurist
imports eventlet because oslo.service installs it), ``db version`` two
alembic INFO lines, ``pyct-compute`` an amqp WARNING on every stop, and the
all-in-one logged no request at all.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request

from tests.integration.conftest import rabbit_transport
from tests.services import BIN, Deployment, write_conf

LOG_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \d+ (?P<level>[A-Z]+) "
    r"(?P<logger>\S+) \[(?P<context>[^]]*)\] (?P<message>.*)$")
ACCESS = re.compile(r'^127\.0\.0\.1 "(?P<method>[A-Z]+) (?P<path>\S+)" '
                    r"status: (?P<status>\d{3}) len: \d+ microversion: "
                    r"\S+ time: \d+\.\d{6}$")


def _manage(conf: str | None, *args: str) -> subprocess.CompletedProcess:
    argv = [os.path.join(BIN, "pyct-manage")]
    if conf:
        argv += ["--config-file", conf]
    return subprocess.run([*argv, *args], capture_output=True, text=True,
                          timeout=120)


def _no_warnings(text: str) -> None:
    bad = [line for line in text.splitlines() if "warning" in line.lower()
           or "Traceback" in line]
    assert not bad, "\n".join(bad)


def test_manage_help_and_db_commands_write_nothing_to_stderr(tmp_path):
    conf = write_conf(str(tmp_path / "pyct.conf"), {
        "DEFAULT": {"state_path": tmp_path, "virt_driver": "fake"},
        "database": {"connection": f"sqlite:///{tmp_path}/pyct.sqlite"}})
    helped = _manage(None, "--help")
    assert helped.returncode == 0 and "usage:" in helped.stdout
    assert helped.stderr == ""
    before = _manage(conf, "db", "version")
    assert (before.returncode, before.stdout, before.stderr) == (
        0, "None\n", "")
    synced = _manage(conf, "db", "sync")
    assert synced.returncode == 0 and synced.stderr == ""
    head = synced.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{12}", head), synced.stdout
    after = _manage(conf, "db", "version")
    assert (after.stdout, after.stderr) == (head + "\n", "")


# a caller without a token claiming an identity, with a body too large to
# get to the authentication middleware
SPOOF = {"X-User-Id": "mallory", "X-Project-Id": "mallory",
         "X-Roles": "admin", "X-Identity-Status": "Confirmed"}


def _request(endpoint: str, method: str, path: str,
             body: dict | None = None, spoof: bool = False
             ) -> tuple[int, dict, str]:
    """(status, JSON body or {}, request id) of one API call as demo (or,
    with ``spoof``, as nobody claiming to be mallory)."""
    headers = {"OpenStack-API-Version": "compute 2.37",
               "Content-Type": "application/json"}
    headers.update(SPOOF if spoof else {"X-Auth-Token": "demo:demo"})
    req = urllib.request.Request(
        endpoint + path, method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw, status, headers = resp.read(), resp.status, resp.headers
    except urllib.error.HTTPError as err:
        raw, status, headers = err.read(), err.code, err.headers
    is_json = "json" in (headers["content-type"] or "")
    return (status, json.loads(raw) if raw and is_json else {"raw": raw},
            headers["x-openstack-request-id"])


def _parsed(text: str) -> list[dict]:
    lines = []
    for line in text.splitlines():
        match = LOG_LINE.match(line)
        assert match, f"not an oslo.log line: {line!r}"
        lines.append(match.groupdict())
    return lines


def test_all_in_one_logs_each_request_and_state_change_only(tmp_path):
    dep = Deployment(str(tmp_path), f"sqlite:///{tmp_path}/pyct.sqlite",
                     extra={"metadata": {"port": 0}})
    dep.manage("db", "sync")
    image = str(tmp_path / "image.bin")
    with open(image, "wb") as f:
        f.write(b"pyct\n" * 100)
    image_id = dep.manage("image", "import", "img", image)
    dep.manage("flavor", "create", "m1.tiny", "--id", "1", "--vcpus", "1",
               "--ram", "512", "--disk", "1")
    proc = dep.start("pyct-all-in-one")
    try:
        time.sleep(1)  # anything the start still logs comes in now
        # and the four listeners' lines (checked below), complete lines
        # only: on a loaded host the last may come seconds after the API
        deadline = time.monotonic() + 30
        while sum(not ACCESS.match(ln["message"]) for ln in _parsed(
                proc.output().rpartition("\n")[0])) < 4:
            assert time.monotonic() < deadline, proc.output()
            time.sleep(0.1)
        start = _parsed(proc.output().rpartition("\n")[0])
        offset = len(start)
        made: list[tuple[str, str, int, str, bool]] = []

        def call(method: str, path: str, body: dict | None = None,
                 spoof: bool = False):
            status, data, rid = _request(dep.endpoint, method, path, body,
                                         spoof)
            made.append((method, path, status, rid, spoof))
            return status, data

        status, data = call("POST", "/v2.1/servers", {"server": {
            "name": "quiet", "imageRef": image_id, "flavorRef": "1",
            "networks": "none"}})
        assert status == 202, data
        uuid = data["server"]["id"]
        path = f"/v2.1/servers/{uuid}"
        deadline = time.monotonic() + 30
        while call("GET", path)[1]["server"]["status"] != "ACTIVE":
            assert time.monotonic() < deadline, "server never went ACTIVE"
            time.sleep(0.2)
        # a streamed body: logged when the server has sent all of it
        status, data = call("GET", f"/image/v2/images/{image_id}/file")
        assert (status, data["raw"]) == (200, b"pyct\n" * 100)
        # a path that would forge a log line if it reached the log raw
        assert call("GET", "/v2.1/servers/x%0A2026-01-01%20INFO%20forged"
                    )[0] == 404
        # the log names only an authenticated caller, never a claimed one
        assert call("POST", "/v2.1/servers", {"pad": "x" * 200_000},
                    spoof=True)[0] == 413
        assert call("DELETE", path)[0] == 204
        while call("GET", path)[0] != 404:
            assert time.monotonic() < deadline, "server never went away"
            time.sleep(0.2)
        time.sleep(0.5)
        output = proc.output()
    finally:
        dep.stop_all()
    _no_warnings(proc.output())
    # one line per listener: the compute side of serial consoles, the
    # compute service, the console proxy, the API
    messages = [ln["message"] for ln in start[:4]]
    assert re.fullmatch(r"serial consoles attach on 127\.0\.0\.1:\d+",
                        messages.pop(0)), messages
    proxy = [m for m in messages if m.startswith("serial console proxy on ")]
    assert len(proxy) == 1, messages
    messages.remove(proxy[0])
    assert messages == [
        "compute service on vm started",
        f"API listening on http://127.0.0.1:{dep.port}"]
    for line in start[4:]:  # the harness's wait for the port
        assert ACCESS.match(line["message"])["path"] == "/", line

    lines = _parsed(output)[offset:]
    access = [ln for ln in lines if ln["logger"].endswith("request_log")]
    states = [ln for ln in lines if ln["logger"].endswith("db.instances")]
    assert len(access) + len(states) == len(lines), lines
    # one access line per request, in order, with its id and caller
    assert len(access) == len(made)
    for line, (method, req_path, status, rid, spoof) in zip(access, made):
        got = ACCESS.match(line["message"])
        assert got, line["message"]
        assert (got["method"], got["status"]) == (method, str(status))
        assert rid in line["context"]
        if spoof:
            assert line["context"] == f"None {rid} - - - - - -", line
        else:
            assert "demo demo" in line["context"], line
        # re-quoted as sent: the forged path stays on its one line
        assert got["path"] == req_path
        if req_path.endswith("/file"):
            assert " len: 500 " in line["message"], line
    # one line per state change, the first three under the boot's id
    assert [ln["message"] for ln in states] == [
        f"[instance: {uuid}] created on vm: vm_state building, "
        "task_state scheduling",
        f"[instance: {uuid}] task_state scheduling -> spawning",
        f"[instance: {uuid}] vm_state building -> active, task_state "
        "spawning -> None, power_state NOSTATE -> Running",
        f"[instance: {uuid}] task_state None -> deleting",
        f"[instance: {uuid}] vm_state active -> deleted, task_state "
        "deleting -> None, power_state Running -> NOSTATE"]
    boot_id, delete_id = made[0][3], next(m[3] for m in made
                                          if m[0] == "DELETE")
    assert all(boot_id in ln["context"] for ln in states[:3])
    assert all(delete_id in ln["context"] for ln in states[3:])


def test_services_over_rabbitmq_start_and_stop_quietly(tmp_path):
    with rabbit_transport() as (url, extra):
        dep = Deployment(str(tmp_path), f"sqlite:///{tmp_path}/pyct.sqlite",
                         transport_url=url,
                         extra={**extra, "metadata": {"port": 0}})
        dep.manage("db", "sync")
        try:
            compute = dep.start("pyct-compute", host="quiet-a")
            compute.wait_output("compute service on quiet-a started")
            api = dep.start("pyct-api")
        finally:
            dep.stop_all()
    assert "compute service on quiet-a stopped" in compute.output()
    for proc in (compute, api):
        _no_warnings(proc.output())
        assert len(_parsed(proc.output())) <= 3, proc.output()
