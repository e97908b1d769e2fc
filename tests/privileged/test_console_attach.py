"""Attaching to a real guest's console through the launcher.

``ContainerDriver.attach_console`` gives a socket on the guest's console
pty: output reaches every attached client and the console log alike,
input reaches the guest's shell, a client's input counts against the
same byte budget as the guest's output (a client flooding the console
costs the launcher a bounded amount, as a guest flooding it does), and a
guest that goes away ends its clients' streams.
"""

from __future__ import annotations

import os
import socket
import threading
import time

from pyct_driver import exception
from tests.privileged.guest_tools import (  # noqa: F401 - fixtures
    busybox_image, driver, guests, wait_for)


def _read_until(sock: socket.socket, needle: bytes,
                timeout: float = 15.0) -> bytes:
    sock.settimeout(timeout)
    seen = b""
    while needle not in seen:
        chunk = sock.recv(65536)
        assert chunk, f"console closed; saw {seen!r}"
        seen += chunk
    return seen


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_two_clients_see_the_shell_and_the_log_keeps_it(driver, guests):
    spec = guests.boot()
    log = os.path.join(driver.records.dir(spec.uuid), "console.log")
    wait_for(lambda: b"Please press Enter" in open(log, "rb").read(), 15,
             what="askfirst prompt")
    with driver.attach_console(spec) as one, \
            driver.attach_console(spec) as two:
        one.sendall(b"\n")
        _read_until(one, b"# ")
        _read_until(two, b"# ")
        two.sendall(b"echo fan-$((40+2))\n")
        assert b"\nfan-42\r\n" in _read_until(one, b"\nfan-42\r\n")
        _read_until(two, b"\nfan-42\r\n")
    with open(log, "rb") as f:
        assert b"\nfan-42" in f.read()
    # detached clients are gone from the launcher; the console still works
    with driver.attach_console(spec) as three:
        three.sendall(b"echo three\n")
        _read_until(three, b"\nthree\r\n")


def test_client_input_flood_is_bounded_and_destroy_ends_it(driver, guests):
    limits = driver.guest_limits
    spec = guests.boot()
    status = (lambda: driver.launcher.status(spec.uuid))
    launcher = driver.launcher.launcher_pid()
    sock = driver.attach_console(spec)
    stop = threading.Event()

    def flood():
        junk = b"x" * 4096
        try:
            while not stop.is_set():
                sock.sendall(junk)
        except OSError:
            pass
    feeder = threading.Thread(target=flood, daemon=True)
    feeder.start()
    try:
        time.sleep(1.5)  # past the burst
        cpu0, read0, t0 = (_cpu_seconds(launcher), status()["console_bytes"],
                           time.monotonic())
        time.sleep(3.0)
        cpu1, read1, t1 = (_cpu_seconds(launcher), status()["console_bytes"],
                           time.monotonic())
        rate = (read1 - read0) / (t1 - t0)
        assert rate <= limits.console_rate * 1.1 + 65536 / (t1 - t0), rate
        assert (cpu1 - cpu0) / (t1 - t0) < 0.1
        assert status()["alive"]
    finally:
        stop.set()
    driver.destroy(spec)
    sock.settimeout(10)
    try:
        while sock.recv(65536):
            pass  # drained to EOF: the launcher closed its end
    except ConnectionResetError:
        pass
    feeder.join(5)
    sock.close()
    try:
        driver.attach_console(spec)
        raise AssertionError("attached to a destroyed guest")
    except exception.InstanceNotReady:
        pass
