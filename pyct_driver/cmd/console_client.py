"""``pyct-console URL``: a terminal on a guest's serial console.

The tenant's end of ``openstack console url show --serial``: it connects
to the ``ws://`` URL (one connect per URL) with websockify's ``binary``
subprotocol, as ``pyct-serialproxy`` asks, and joins it to this terminal.
On a terminal, keys go through raw (Ctrl-] leaves, as telnet's escape
does); from a pipe, what is read is sent, and the output is shown until
the console has been quiet for ``--linger`` seconds after the input ended.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import termios
import threading
import tty
from typing import Iterator

from websockets import exceptions as ws_exc
from websockets.sync.client import ClientConnection, connect

ESCAPE = b"\x1d"  # Ctrl-]


@contextlib.contextmanager
def _raw(fd: int) -> Iterator[None]:
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _send_input(ws: ClientConnection, fd: int, done: threading.Event) -> None:
    interactive = os.isatty(fd)
    try:
        while not done.is_set():
            data = os.read(fd, 4096)
            if not data:
                break
            if interactive and ESCAPE in data:
                data = data.split(ESCAPE, 1)[0]
                if data:
                    ws.send(data)
                ws.close()
                break
            ws.send(data)
    except (ws_exc.ConnectionClosed, OSError):
        pass
    finally:
        done.set()


def _show_output(ws: ClientConnection, done: threading.Event,
                 linger: float) -> None:
    out = sys.stdout.buffer
    while True:
        try:
            # a closed input leaves ``linger`` seconds of quiet to end on
            data = ws.recv(timeout=linger if done.is_set() else None)
        except (TimeoutError, ws_exc.ConnectionClosed):
            return
        out.write(data if isinstance(data, bytes) else data.encode())
        out.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="pyct-console", description=__doc__.split("\n\n")[1])
    parser.add_argument("url", help="the ws:// URL of `openstack console "
                        "url show --serial`")
    parser.add_argument("--linger", type=float, default=2.0,
                        help="seconds of console quiet to wait for after "
                        "the input ends (pipes)")
    args = parser.parse_args(argv)
    try:
        ws = connect(args.url, subprotocols=["binary"], open_timeout=10)
    except (ws_exc.InvalidHandshake, OSError, TimeoutError) as err:
        print(f"pyct-console: cannot attach: {err}", file=sys.stderr)
        return 1
    fd = sys.stdin.fileno()
    done = threading.Event()
    if os.isatty(fd):
        print("attached; Ctrl-] leaves\r", file=sys.stderr)
    with ws, _raw(fd):
        sender = threading.Thread(target=_send_input, args=(ws, fd, done),
                                  daemon=True)
        sender.start()
        _show_output(ws, done, args.linger)
    return 0


if __name__ == "__main__":
    sys.exit(main())
