"""GET /limits: a project's absolute limits and usage, as Nova shows them.

Each quota maps to Nova's names (``maxTotalInstances``, ``totalRAMUsed``
...); ``rate`` is always empty. The nova-network limits leave at 2.36,
``maxImageMeta`` at 2.39, the personality limits at 2.57. An admin may
ask for another project with ``?tenant_id=``.
"""

from __future__ import annotations

from pyct_driver.api import quota_check, quota_sets
from pyct_driver.api.request import ApiRequest, Result
from pyct_driver.api.state import Api
from pyct_driver.db import quotas as db_quotas

_MAX = (("ram", "maxTotalRAMSize"), ("instances", "maxTotalInstances"),
        ("cores", "maxTotalCores"), ("key_pairs", "maxTotalKeypairs"),
        ("floating_ips", "maxTotalFloatingIps"),
        ("metadata_items", "maxServerMeta"),
        ("metadata_items", "maxImageMeta"),
        ("injected_files", "maxPersonality"),
        ("injected_file_content_bytes", "maxPersonalitySize"),
        ("security_groups", "maxSecurityGroups"),
        ("security_group_rules", "maxSecurityGroupRules"),
        ("server_groups", "maxServerGroups"),
        ("server_group_members", "maxServerGroupMembers"))
_USED = (("ram", "totalRAMUsed"), ("cores", "totalCoresUsed"),
         ("instances", "totalInstancesUsed"),
         ("floating_ips", "totalFloatingIpsUsed"),
         ("security_groups", "totalSecurityGroupsUsed"),
         ("server_groups", "totalServerGroupsUsed"))
_NETWORK = ("floating_ips", "security_groups", "security_group_rules")
_FILES = ("injected_files", "injected_file_content_bytes")


def index(api: Api, req: ApiRequest) -> Result:
    api.policy.authorize(req.context, "os_compute_api:limits", {})
    quota_sets.check_query(req, ("tenant_id",))
    project_id = req.context.project_id
    if "tenant_id" in req.params:
        api.policy.authorize(req.context,
                             "os_compute_api:limits:other_project")
        project_id = req.param("tenant_id")
    hide: tuple = ()
    if req.at_least("2.36"):
        hide = _NETWORK + (_FILES if req.at_least("2.57") else ())
    limits = quota_check.effective(api, project_id)
    used = db_quotas.usage_of(api.db, project_id)
    absolute = {name: limits[res] for res, name in _MAX
                if res not in hide
                and not (name == "maxImageMeta" and req.at_least("2.39"))}
    absolute.update({name: used.get(res, 0) for res, name in _USED
                     if res not in hide})
    return Result(200, {"limits": {"rate": [], "absolute": absolute}})
