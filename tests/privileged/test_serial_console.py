"""The interactive serial console of a real busybox guest, end to end.

The URL comes from the real openstacksdk and the real CLI (``openstack
console url show --serial``); a websocket client (the ``websockets``
library) connects to the all-in-one's proxy, presses Enter at the
console's ``askfirst`` prompt, types ``echo hello`` into the guest's own
shell and reads ``hello`` back; the console log keeps everything, the token
is refused the second time, and another project gets 404.
"""

from __future__ import annotations

import os
import subprocess
import sys

import openstack.exceptions
import pytest
from websockets import exceptions as ws_exc
from websockets.sync.client import connect

from tests.privileged.e2e_fixtures import boot, deployment
from tests.waiting import wait_for


@pytest.fixture(scope="module")
def env():
    with deployment("console") as e:
        yield e


def _read_until(ws, needle: bytes, timeout: float = 15.0) -> bytes:
    seen = b""
    while needle not in seen:
        seen += ws.recv(timeout=timeout)
    return seen


def test_echo_hello_in_the_guest_shell_over_the_websocket(env):
    srv, _ = boot(env, "con1")
    uuid = srv["id"]
    wait_for(lambda: "Please press Enter" in env.console(uuid), 15,
             what="the console's askfirst prompt")
    # the CLI's URL is good too, but each URL is one connect: use the SDK's
    shown = env.cli_json("console", "url", "show", "--serial", "con1")
    assert shown["type"] == "serial", shown
    assert shown["url"].startswith(
        f"ws://127.0.0.1:{env.dep.console_port}/?token="), shown
    url = env.sdk.compute.create_server_remote_console(
        uuid, protocol="serial", type="serial").url
    assert url != shown["url"]
    with connect(url, subprotocols=["binary"], open_timeout=10) as ws:
        assert ws.subprotocol == "binary"
        ws.send(b"\n")
        _read_until(ws, b"# ")  # the guest's root shell prompt
        ws.send(b"echo hello\n")
        out = _read_until(ws, b"\nhello\r\n")
        assert b"echo hello" in out  # the tty echoed what was typed
    # the console log has it all, alongside
    log = env.cli("console", "log", "show", "con1").stdout
    assert "echo hello" in log and "\nhello" in log.replace("\r", ""), log
    assert "pyct busybox guest booting" in log
    # the token was good once
    with pytest.raises(ws_exc.InvalidStatus) as err:
        connect(url, subprotocols=["binary"], open_timeout=10)
    assert err.value.response.status_code == 401
    # the CLI's unused URL still works, and the guest's shell is the same
    with connect(shown["url"], subprotocols=["binary"]) as ws:
        ws.send(b"echo again-$((6*7))\n")
        _read_until(ws, b"again-42")


def test_pyct_console_joins_a_terminal_to_the_url(env):
    """The tenant's own client, ``pyct-console URL``, from a pipe: what is
    piped in is typed at the guest's shell and the answer comes out."""
    url = env.sdk.compute.create_server_remote_console(
        env.server("con1").id, protocol="serial", type="serial").url
    client = os.path.join(os.path.dirname(sys.executable), "pyct-console")
    run = subprocess.run([client, "--linger", "2", url],
                         input=b"echo con-$((6*7))\n", capture_output=True,
                         timeout=60, check=False)
    assert run.returncode == 0, run
    assert b"con-42" in run.stdout, run
    # the URL was good for that one connect
    again = subprocess.run([client, url], input=b"", capture_output=True,
                           timeout=60, check=False)
    assert again.returncode == 1 and b"cannot attach" in again.stderr, again


def test_another_project_gets_404(env):
    uuid = env.server("con1").id
    other = env.dep.sdk_connection("other")
    with pytest.raises(openstack.exceptions.NotFoundException):
        other.compute.create_server_remote_console(
            uuid, protocol="serial", type="serial")
    result = env.dep.openstack("console", "url", "show", "--serial", uuid,
                               cloud="other", check=False)
    assert result.returncode != 0 and "No Server found" in result.stderr, \
        result


def test_a_stopped_server_has_no_console(env):
    env.cli("server", "stop", "con1")
    env.wait_status("con1", "SHUTOFF")
    with pytest.raises(openstack.exceptions.ConflictException):
        env.sdk.compute.create_server_remote_console(
            env.server("con1").id, protocol="serial", type="serial")
