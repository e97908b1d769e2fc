"""``[DEFAULT]`` options of stuck work and of a message bus that is away.

The build and action timeouts are what the API's stuck-work task
(``api.stuck_work``) fails work after when no compute host took it or
the host that took it is down; ``rpc_send_retries`` bounds how long an
API request waits for an unreachable bus before it answers 503.
"""

from __future__ import annotations

from oslo_config import cfg

GROUP = None  # [DEFAULT]

OPTS = [
    cfg.IntOpt("instance_build_timeout", default=600, min=0,
               help="Seconds after which a build that no compute host "
                    "took, or whose host is down, is failed (ERROR, with "
                    "a fault naming the host) by the API's stuck-work "
                    "task. A build a live host works on is never cut "
                    "short. 0 disables it (Nova's default)."),
    cfg.IntOpt("instance_action_timeout", default=600, min=0,
               help="Seconds after which an action (reboot, stop, start, "
                    "pause, suspend, rescue, delete, resize, migrate, "
                    "confirm/revert, rebuild, evacuate, snapshot, backup, "
                    "shelve, unshelve, ...) that no compute host took, or "
                    "whose host is down, is failed with a fault naming "
                    "the host: a simple action's task state is given "
                    "back; a resize or migration under way, a revert, a "
                    "confirm, a rebuild or an evacuation leave the server "
                    "in ERROR (as Nova does); a snapshot, backup or "
                    "shelve leaves it as it was, its unfinished image "
                    "deleted; a delete on a host that is down is finished "
                    "by the API (the host destroys the guest when it "
                    "returns). 0 disables it."),
    cfg.IntOpt("stuck_work_interval", default=60, min=0,
               help="Seconds between the API's stuck-work checks; every "
                    "API process runs them, and each stuck instance is "
                    "failed by exactly one. 0 disables the task."),
    cfg.IntOpt("rpc_send_retries", default=3, min=0,
               help="How many times the API reconnects to the message "
                    "bus to send one message (waiting "
                    "[oslo_messaging_rabbit] rabbit_retry_interval, then "
                    "longer by rabbit_retry_backoff) before it gives up "
                    "and answers 503 serviceUnavailable."),
]
