"""The built-in HTTP server: wsgiref with a bounded pool of threads.

``serve`` runs until interrupted; ``make_server`` returns the server so
tests and the all-in-one can run it in a thread and shut it down. Requests
are handled by ``threads`` worker threads (no eventlet); the accept loop
queues connections to them.
"""

from __future__ import annotations

import concurrent.futures
import socketserver
from typing import Callable
from wsgiref import simple_server


class _QuietHandler(simple_server.WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        # access logging belongs to the app's logger, not stderr
        pass


class ThreadPoolWSGIServer(socketserver.ThreadingMixIn,
                           simple_server.WSGIServer):
    """A WSGI server handing each connection to a fixed thread pool."""

    daemon_threads = True
    allow_reuse_address = True
    # every request is a new connection (HTTP/1.0): a backlog of 5 drops
    # bursts, and clients retry a dropped SYN only after a second
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], threads: int) -> None:
        super().__init__(address, _QuietHandler)
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="pyct-api")

    def process_request(self, request, client_address) -> None:
        self._pool.submit(self.process_request_thread, request,
                          client_address)

    def server_close(self) -> None:
        super().server_close()
        self._pool.shutdown(wait=False, cancel_futures=True)


def make_server(app: Callable, host: str, port: int, threads: int
                ) -> ThreadPoolWSGIServer:
    server = ThreadPoolWSGIServer((host, port), threads)
    server.set_app(app)
    return server


def serve(app: Callable, host: str, port: int, threads: int) -> None:
    """Serve ``app`` on host:port until interrupted."""
    server = make_server(app, host, port, threads)
    try:
        server.serve_forever()
    finally:
        server.server_close()
