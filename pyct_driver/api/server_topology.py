"""``GET /servers/{id}/topology`` (2.78): a server's NUMA topology.

pyct gives no server a NUMA topology (a container shares the host's
memory nodes), so every server answers what Nova answers for a server
without one: no nodes and no page size. Below 2.78 the route does not
exist (404).
"""

from __future__ import annotations

from pyct_driver import exception
from pyct_driver.api import servers
from pyct_driver.api.request import ApiRequest, Result
from pyct_driver.api.state import Api


def index(api: Api, req: ApiRequest, server_id: str) -> Result:
    if not req.at_least("2.78"):
        raise exception.NotFound("The resource could not be found.")
    servers.get_instance(api, req, server_id,
                         "os_compute_api:servers:topology:index")
    return Result(200, {"nodes": [], "pagesize_kb": None})
