"""``[migration]``: how compute hosts hand a guest to each other.

A cold migration's stream goes straight from the source compute service
to a listener the destination opens for it, on the destination's
management address (never a wildcard: the listener must not face the
guests' networks), authenticated by a one-time token the source gets over
RPC (``compute.migration_transfer``).
"""

from __future__ import annotations

from oslo_config import cfg

GROUP = "migration"

OPTS = [
    cfg.HostAddressOpt(
        "address", default=None, sample_default="<my_ip>",
        help="This host's management address: the migration listener "
             "binds to it and only it (default: [DEFAULT] my_ip). It "
             "must be reachable from the other compute hosts and not "
             "from guests."),
    cfg.FloatOpt("token_ttl", default=60.0, min=1.0,
                 help="Seconds a destination waits for the source to "
                      "connect with its one-time token before the token "
                      "expires and the listener closes."),
    cfg.FloatOpt("transfer_timeout", default=600.0, min=1.0,
                 help="Seconds a migration's stream may stall, and the "
                      "longest a destination waits for it to end."),
]
