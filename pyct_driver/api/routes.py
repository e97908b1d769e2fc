"""The API's route tables: which handler serves which method and path.

``COMPUTE_ROUTES`` are the paths below ``/v2.1[/{project_id}]``,
``IMAGE_ROUTES`` those below ``/image``. A first path segment is the URL's
project id only when the rest of the path is a route; ``COLLECTIONS`` are
first segments that are never a project id even then. The router in
``app`` compiles these once; a new API area adds its rows here (and
tests/unit/policy_matrix.py an entry per row).
"""

from __future__ import annotations

from typing import Callable

from pyct_driver.api import (aggregates, availability_zones,
                             compute_services, flavors, hypervisors,
                             image_create, image_list, image_members,
                             image_tags, image_update, image_upload,
                             images,
                             instance_actions, interfaces, keypairs, limits,
                             migrations, quota_class_sets, quota_sets,
                             server_actions, server_tags, server_topology,
                             servers, tenant_usage, versions)
from pyct_driver.api.request import Result

Handler = Callable[..., Result]

# (method, path below /v2.1[/project], handler)
COMPUTE_ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "", versions.show),
    ("GET", "flavors", flavors.index),
    ("POST", "flavors", flavors.create),
    ("GET", "flavors/detail", flavors.detail),
    ("GET", "flavors/{flavor_id}", flavors.show),
    ("PUT", "flavors/{flavor_id}", flavors.update),
    ("DELETE", "flavors/{flavor_id}", flavors.delete),
    ("GET", "flavors/{flavor_id}/os-flavor-access", flavors.access_index),
    ("POST", "flavors/{flavor_id}/action", flavors.action),
    ("GET", "flavors/{flavor_id}/os-extra_specs", flavors.specs_index),
    ("POST", "flavors/{flavor_id}/os-extra_specs", flavors.specs_create),
    ("GET", "flavors/{flavor_id}/os-extra_specs/{key}", flavors.spec_show),
    ("PUT", "flavors/{flavor_id}/os-extra_specs/{key}", flavors.spec_update),
    ("DELETE", "flavors/{flavor_id}/os-extra_specs/{key}",
     flavors.spec_delete),
    ("GET", "servers", servers.index),
    ("POST", "servers", servers.create),
    ("GET", "servers/detail", servers.detail),
    ("GET", "servers/{server_id}", servers.show),
    ("PUT", "servers/{server_id}", servers.update),
    ("DELETE", "servers/{server_id}", servers.delete),
    ("POST", "servers/{server_id}/action", server_actions.action),
    ("GET", "servers/{server_id}/os-instance-actions",
     instance_actions.index),
    ("GET", "servers/{server_id}/os-instance-actions/{request_id}",
     instance_actions.show),
    ("GET", "servers/{server_id}/os-interface", interfaces.index),
    ("POST", "servers/{server_id}/os-interface", interfaces.create),
    ("GET", "servers/{server_id}/os-interface/{port_id}", interfaces.show),
    ("DELETE", "servers/{server_id}/os-interface/{port_id}",
     interfaces.delete),
    ("GET", "servers/{server_id}/tags", server_tags.index),
    ("PUT", "servers/{server_id}/tags", server_tags.update_all),
    ("DELETE", "servers/{server_id}/tags", server_tags.delete_all),
    ("GET", "servers/{server_id}/tags/{tag}", server_tags.show),
    ("PUT", "servers/{server_id}/tags/{tag}", server_tags.update),
    ("DELETE", "servers/{server_id}/tags/{tag}", server_tags.delete),
    ("GET", "servers/{server_id}/topology", server_topology.index),
    ("GET", "os-keypairs", keypairs.index),
    ("POST", "os-keypairs", keypairs.create),
    ("GET", "os-keypairs/{keypair_name}", keypairs.show),
    ("DELETE", "os-keypairs/{keypair_name}", keypairs.delete),
    ("GET", "os-quota-sets/{project_id}", quota_sets.show),
    ("PUT", "os-quota-sets/{project_id}", quota_sets.update),
    ("DELETE", "os-quota-sets/{project_id}", quota_sets.delete),
    ("GET", "os-quota-sets/{project_id}/defaults", quota_sets.defaults),
    ("GET", "os-quota-sets/{project_id}/detail", quota_sets.detail),
    ("GET", "os-quota-class-sets/{class_name}", quota_class_sets.show),
    ("PUT", "os-quota-class-sets/{class_name}", quota_class_sets.update),
    ("GET", "limits", limits.index),
    # the operator's views (admin by default)
    ("GET", "os-services", compute_services.index),
    ("PUT", "os-services/{service_id}", compute_services.update),
    ("DELETE", "os-services/{service_id}", compute_services.delete),
    # fixed paths before the {hypervisor_id} ones they would match
    ("GET", "os-hypervisors", hypervisors.index),
    ("GET", "os-hypervisors/detail", hypervisors.detail),
    ("GET", "os-hypervisors/statistics", hypervisors.statistics),
    ("GET", "os-hypervisors/{hypervisor_id}", hypervisors.show),
    ("GET", "os-hypervisors/{hypervisor_id}/uptime", hypervisors.uptime),
    ("GET", "os-hypervisors/{pattern}/search", hypervisors.search),
    ("GET", "os-hypervisors/{pattern}/servers", hypervisors.servers),
    ("GET", "os-availability-zone", availability_zones.index),
    ("GET", "os-availability-zone/detail", availability_zones.detail),
    ("GET", "os-aggregates", aggregates.index),
    ("POST", "os-aggregates", aggregates.create),
    ("GET", "os-aggregates/{aggregate_id}", aggregates.show),
    ("PUT", "os-aggregates/{aggregate_id}", aggregates.update),
    ("DELETE", "os-aggregates/{aggregate_id}", aggregates.delete),
    ("POST", "os-aggregates/{aggregate_id}/action", aggregates.action),
    ("GET", "os-simple-tenant-usage", tenant_usage.index),
    ("GET", "os-simple-tenant-usage/{tenant_id}", tenant_usage.show),
    ("GET", "os-migrations", migrations.index),
]

IMAGE_ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "v2/images", image_list.index),
    ("POST", "v2/images", image_create.create),
    ("GET", "v2/images/{image_id}", images.show),
    ("PATCH", "v2/images/{image_id}", image_update.update),
    ("DELETE", "v2/images/{image_id}", image_create.delete),
    ("GET", "v2/images/{image_id}/file", images.download),
    ("PUT", "v2/images/{image_id}/file", image_upload.upload),
    ("POST", "v2/images/{image_id}/actions/deactivate",
     image_create.deactivate),
    ("POST", "v2/images/{image_id}/actions/reactivate",
     image_create.reactivate),
    ("PUT", "v2/images/{image_id}/tags/{tag}", image_tags.add),
    ("DELETE", "v2/images/{image_id}/tags/{tag}", image_tags.delete),
    ("GET", "v2/images/{image_id}/members", image_members.index),
    ("POST", "v2/images/{image_id}/members", image_members.create),
    ("GET", "v2/images/{image_id}/members/{member_id}", image_members.show),
    ("PUT", "v2/images/{image_id}/members/{member_id}",
     image_members.update),
    ("DELETE", "v2/images/{image_id}/members/{member_id}",
     image_members.delete),
    ("GET", "v2/schemas/image", images.schema),
]

# first path segments that are collections, not a project id
COLLECTIONS = {"servers", "flavors", "images", "os-keypairs", "limits",
                "extensions", "os-availability-zone", "os-hypervisors",
                "os-services", "os-quota-sets", "os-server-groups",
                "os-simple-tenant-usage", "os-quota-class-sets",
                "os-aggregates", "os-migrations",
                "os-server-external-events"}
