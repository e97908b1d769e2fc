"""``[container]``: the container virt driver's settings.

Kept apart from ``pyct_driver.conf`` (which registers every group on the
global ``CONF`` when imported) so that the Nova adapter can offer the same
options under ``[pyct]`` in Nova's own configuration without importing
pyct's other groups, whose names (``host``, ``state_path``, ``my_ip``)
Nova already owns.
"""

from __future__ import annotations

from oslo_config import cfg

GROUP = "container"

OPTS = [
    cfg.StrOpt("base_dir",
               help="Where the container driver keeps image layers, "
                    "instance roots, consoles and its launcher; default "
                    "$state_path/container."),
    cfg.StrOpt("cgroup_root", default="/sys/fs/cgroup",
               help="Mount point of the cgroup hierarchies (v1 or v2, "
                    "detected)."),
    cfg.StrOpt("cgroup_parent", default="pyct",
               help="cgroup (in every hierarchy) under which each "
                    "instance gets its own group."),
    cfg.IntOpt("default_pids_max", default=1024, min=16,
               help="Process limit of a guest when its flavor has no "
                    "pyct:pids_max."),
    cfg.IntOpt("console_max_bytes", default=1048576, min=1024,
               help="Largest console log kept per instance; older output "
                    "is dropped."),
    cfg.IntOpt("console_rate_bytes", default=65536, min=0,
               help="Bytes a second of a guest's console output the host "
                    "reads (0: no bound). A guest writing faster blocks on "
                    "its console, as on a slow serial line, and costs the "
                    "host's launcher no more than this."),
    cfg.IntOpt("console_burst_bytes", default=1048576, min=4096,
               help="Console output a quiet guest may write at once before "
                    "console_rate_bytes applies (boot logs)."),
    cfg.IntOpt("image_max_bytes", default=20 * 1024 ** 3, min=1,
               help="Largest unpacked image accepted, in bytes."),
    cfg.IntOpt("image_max_files", default=500000, min=1,
               help="Most files an image may unpack to."),
    cfg.StrOpt("preallocate_images", default="space",
               choices=[("space", "Allocate every instance disk's full "
                                  "size when it is created (fallocate): a "
                                  "guest that fills its disk cannot take "
                                  "space from the host or other guests; a "
                                  "disk that does not fit fails the "
                                  "spawn."),
                        ("none", "Sparse disks that take space as guests "
                                 "write, as Nova's default: only the "
                                 "scheduler's accounting keeps them within "
                                 "the file system (needed for "
                                 "disk_allocation_ratio > 1).")],
               help="Preallocation of instance disks (Nova's option of the "
                    "same name and values)."),
    cfg.FloatOpt("soft_reboot_timeout", default=60.0, min=0.0,
                 help="Seconds a soft reboot waits for the guest's init "
                      "to shut down before it is killed (hard reboot)."),
    cfg.BoolOpt("allow_host_root_guests", default=False,
                help="Allow flavors with pyct:host_root=true: guests "
                     "whose root IS root on this host, with every "
                     "capability and no user namespace. Such a guest can "
                     "take over the host; only for trusted workloads. "
                     "Off: the flavor API refuses the extra spec and "
                     "compute hosts refuse to boot such guests. Set it on "
                     "the API and on the compute hosts."),
    cfg.IntOpt("devpts_max", default=512, min=16, max=1 << 20,
               help="Most pseudo-terminals one guest's /dev/pts hands "
                    "out (devpts max=); the guest cannot raise it."),
    cfg.IntOpt("nofile_soft", default=1024, min=64,
               help="Soft RLIMIT_NOFILE of a guest's init."),
    cfg.IntOpt("nofile_hard", default=524288, min=64,
               help="Hard RLIMIT_NOFILE of a guest's init; guest root "
                    "cannot raise it. A guest's open files are charged "
                    "to its memory cgroup."),
    cfg.BoolOpt("guest_views", default=True,
                help="Serve each guest its flavor's /proc/meminfo, "
                     "cpuinfo, stat, uptime, loadavg, diskstats, swaps and "
                     "/sys/devices/system/cpu/online from one lxcfs per "
                     "host (started and watched by the compute service), "
                     "so free, top, uptime, nproc and lscpu inside show "
                     "the flavor. Off, or lxcfs missing: the host's."),
    cfg.StrOpt("lxcfs_binary", default="lxcfs",
               help="The lxcfs program for guest_views."),
    cfg.BoolOpt("guest_cpuset", default=True,
                help="Give each guest a cpuset of exactly its vCPU count "
                     "(the least used host CPUs, re-balanced as guests "
                     "come and go), so nproc and sched_getaffinity show "
                     "its vCPUs; a flavor may opt out with "
                     "pyct:dedicated_cpuset=false."),
]
