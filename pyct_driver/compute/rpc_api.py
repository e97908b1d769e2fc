"""The compute RPC API as the compute service answers it: the version its
endpoints (``ComputeManager.target``) advertise and what each version added.

The client side (``rpc.client``) keeps its own constant, the newest version
it sends, so a test (tests/unit/test_rpc_versions.py) can catch one side
bumped without the other. Versions only grow by the minor for additive
changes, and the server keeps answering every version it ever advertised.
To add a method: write the endpoint on the manager, bump
``RPC_API_VERSION`` here and in ``rpc.client`` to the same next minor, add
a history line below naming the method, and send it from the client with
that version (``version="1.N"``).

Version history:

* 1.0 - build_and_run_instance, terminate_instance, reboot_instance,
        stop_instance, start_instance
* 1.1 - pause_instance, unpause_instance, get_console_output
* 1.2 - attach_interface, detach_interface (calls: the API releases the
        port if plugging fails)
* 1.3 - get_serial_console (a call: where the console proxy attaches)
* 1.4 - set_admin_password, get_diagnostics (calls)
* 1.5 - resize_instance, confirm_resize, revert_resize, rebuild_instance
* 1.6 - snapshot_instance, backup_instance, shelve_instance,
        shelve_offload_instance, unshelve_instance
* 1.7 - rescue_instance, unrescue_instance, suspend_instance,
        resume_instance
* 1.8 - refresh_security_groups (a cast: recompute the host's port
        filters)
* 1.9 - sync_floating_ips (a call: the host's NAT follows the database)
* 1.10 - refresh_tunnels (a cast: another host's ports on these networks
         came or went; the VXLAN entries follow the database)
* 1.11 - cold migration: migrate_instance, finish_revert_migration
         (casts); open_migration, finish_migration, abort_migration,
         drop_migration_source, check_live_migration (calls)
* 1.12 - evacuate_instance (a cast to the destination: rebuild a server
         the API moved off a host that is down)
"""

from __future__ import annotations

RPC_API_VERSION = "1.12"
