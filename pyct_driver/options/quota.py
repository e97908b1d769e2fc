"""[quota]: the limits every project gets unless an admin sets its own.

Nova's option names and defaults, so an operator's nova.conf ``[quota]``
section reads the same here. The quota class ``default`` (set through
``os-quota-class-sets/default``) overrides these, a project's own quota
set overrides both. ``driver = noop`` turns quotas off: every limit is
-1 (unlimited) and nothing is counted against one.
"""

from __future__ import annotations

from oslo_config import cfg

GROUP = "quota"


def _limit(name: str, default: int, what: str) -> cfg.IntOpt:
    return cfg.IntOpt(name, default=default, min=-1,
                      help=f"{what} allowed per project by default; -1 "
                           "means unlimited.")


OPTS = [
    _limit("instances", 10, "Servers"),
    _limit("cores", 20, "Instance cores (vCPUs of the servers' flavors)"),
    _limit("ram", 50 * 1024, "Megabytes of instance RAM"),
    _limit("metadata_items", 128, "Metadata items of one server"),
    _limit("injected_files", 5, "Injected files (personality) of one "
                                "server; shown by the quota APIs below "
                                "2.57, pyct takes no personality files."),
    _limit("injected_file_content_bytes", 10 * 1024,
           "Bytes of one injected file (shown below 2.57)"),
    _limit("injected_file_path_length", 255,
           "Characters of an injected file's path (shown below 2.57)"),
    _limit("key_pairs", 100, "Key pairs of each user"),
    _limit("server_groups", 10, "Server groups"),
    _limit("server_group_members", 10, "Servers in one server group"),
    cfg.StrOpt("driver", default="db",
               choices=[("db", "Limits from the database (quota sets, the "
                               "default quota class, these options), "
                               "enforced on create."),
                        ("noop", "No quotas: every limit is -1 and "
                                 "nothing is enforced.")],
               help="How quotas are kept (Nova's DbQuotaDriver and "
                    "NoopQuotaDriver)."),
]
