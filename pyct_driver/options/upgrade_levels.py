"""``[upgrade_levels]``: the newest compute RPC version the API may send.

During a rolling upgrade the API services can run newer code than some
compute services; capping the version keeps them from sending a method an
older compute service cannot answer (Nova's option of the same name). A
capped method fails at the API with a clear 409 instead of an RPC error.
"""

from __future__ import annotations

from oslo_config import cfg

GROUP = "upgrade_levels"

OPTS = [
    cfg.StrOpt("compute", default=None, regex=r"^(auto|\d+\.\d+)?$",
               help="Newest compute RPC API version the API sends, as "
                    "'major.minor' (e.g. '1.4'). Empty or 'auto' sends "
                    "every version this release knows: pyct keeps no "
                    "record of the compute services' versions to derive "
                    "a cap from. Set it to the oldest compute service's "
                    "version while upgrading, unset it when all are "
                    "upgraded."),
]
