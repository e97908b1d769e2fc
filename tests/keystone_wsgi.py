"""Serve Keystone's WSGI application on 127.0.0.1:PORT (test harness only).

Run by the Python of the cached Keystone venv (``tests.keystone_fixture``),
never imported by pyct's tests: ``python keystone_wsgi.py PORT``, with
``OS_KEYSTONE_CONFIG_FILES`` naming the keystone.conf. Keystone parses the
command line with oslo.config, so the port is taken off ``sys.argv``
before Keystone is imported. A threaded wsgiref server: Keystone ships
only a WSGI application, and this needs nothing beyond the standard
library.
"""

import socketserver
import sys
from wsgiref import simple_server


class _Handler(simple_server.WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002
        # keystone logs each request itself, into its log_file
        pass


class _Server(socketserver.ThreadingMixIn, simple_server.WSGIServer):
    daemon_threads = True
    request_queue_size = 64


def main() -> None:
    port = int(sys.argv[1])
    sys.argv = sys.argv[:1]
    from keystone.wsgi import api  # configures Keystone from the env
    server = _Server(("127.0.0.1", port), _Handler)
    server.set_app(api.application)
    print(f"keystone listening on 127.0.0.1:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
