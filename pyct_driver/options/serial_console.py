"""[serial_console]: the guests' interactive serial consoles.

Nova's option names (``[serial_console]``, and its ``[consoleauth]
token_ttl`` here as ``token_ttl``): the API hands out
``base_url?token=...``; ``pyct-serialproxy`` listens on
``serialproxy_host``:``serialproxy_port``, checks the one-time token and
connects to the compute host, which listens for proxies on
``proxyclient_address`` (one port per compute service, the first free one
of ``port_range``) and attaches each proxy to its guest's console pty.
"""

from __future__ import annotations

from oslo_config import cfg

GROUP = "serial_console"

OPTS = [
    cfg.BoolOpt("enabled", default=True,
                help="Offer guests' serial consoles (os-remote-consoles, "
                     "os-getSerialConsole). Off: Nova's 400 'Unavailable "
                     "console type serial.'"),
    cfg.StrOpt("base_url", default="ws://127.0.0.1:6083/",
               help="The URL of pyct-serialproxy that clients are given, "
                    "with '?token=...' added."),
    cfg.HostAddressOpt("serialproxy_host", default="127.0.0.1",
                       help="Address pyct-serialproxy listens on."),
    cfg.PortOpt("serialproxy_port", default=6083,
                help="Port pyct-serialproxy listens on (0: any free "
                     "port, for tests)."),
    cfg.HostAddressOpt("proxyclient_address", default="127.0.0.1",
                       help="Address the compute service listens on for "
                            "the proxy (each attach needs a one-time key "
                            "the compute service made for that token)."),
    cfg.StrOpt("port_range", default="10000:20000",
               regex=r"^\d+:\d+$",
               help="Ports the compute service may listen on for the "
                    "proxy, 'min:max'; it takes the first free one."),
    cfg.IntOpt("token_ttl", default=600, min=1,
               help="Seconds a console URL's token stays valid (it is "
                    "good for one connect)."),
    cfg.ListOpt("allowed_origins", default=[],
                help="Host names, besides the proxy's own, that browser "
                     "pages (the Origin header) may connect from."),
]
