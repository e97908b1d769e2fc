"""``[notifications]``: which notifications the compute service emits.

The transport and driver are oslo.messaging's own options
(``[oslo_messaging_notifications] driver``, ``transport_url``, ``topics``);
these say which format goes out and on which topics the versioned ones go,
with Nova's option names and meanings so a Nova operator's settings carry
over. Nothing is sent while ``[oslo_messaging_notifications] driver`` is
empty or ``noop``.
"""

from __future__ import annotations

from oslo_config import cfg

GROUP = "notifications"

OPTS = [
    cfg.StrOpt(
        "notification_format", default="versioned",
        choices=[
            ("versioned", "Only the versioned notifications (Nova's "
                          "nova_object envelopes: instance.create.start, "
                          "compute.exception, ...) on "
                          "versioned_notifications_topics."),
            ("unversioned", "Only the legacy notifications "
                            "(compute.instance.create.start, ...) on "
                            "[oslo_messaging_notifications] topics."),
            ("both", "Both, each on its own topics."),
        ],
        help="Which notification format the compute service emits (Nova's "
             "option; pyct defaults to versioned, the format new consumers "
             "should use)."),
    cfg.ListOpt(
        "versioned_notifications_topics",
        default=["versioned_notifications"],
        help="Topics the versioned notifications are sent to (one message "
             "per topic)."),
]
