"""The benchmark programs that ``make bench`` runs, in one place.

``PROGRAMS`` lists, in run order, each program under tools/bench with the
arguments of a full run and of ``--quick`` (a CI smoke run: few runs, few
guests), and the metrics ``summary.py`` takes from its JSON documents for
the summary table: pyct's number, the peer measured beside it in the same
run where the program has one, and the target of issue #15, #16 or #17
where the issue sets one. The Makefile's ``bench`` target runs
``summary.py``, which runs this list; ``tests/unit/test_bench_summary.py``
checks that every program here exists and that the Makefile lists none
itself.
"""

from __future__ import annotations

from summary_table import Metric, Program, Ref, Target, extra

P, M = Program, Metric
RUNC, RUNC_DEL = "runc run -d", "runc delete -f"
# results labels carry the run's sizes ("sequential x20", "at 200"): match
# them by pattern so the quick mode's smaller runs still find them
SEQ, CONC = "sequential x*: POST -> ACTIVE", "concurrent x*: POST -> ACTIVE"


def t16(op: str, value: float, on: str = "pyct") -> Target:
    return Target(op, value, "#16", on)


PROGRAMS: tuple[Program, ...] = (
    P("spawn", ("--runs", "50"), ("--runs", "5"), (
        M("spawn, image cached → init running, median", "ms",
          Ref("pyct spawn"), Ref(RUNC), RUNC,
          t16("<=", 0.5, on="ratio")),
        M("spawn p95", "ms", Ref("pyct spawn", "p95"), Ref(RUNC, "p95"),
          RUNC),
        M("destroy, median", "ms", Ref("pyct destroy"), Ref(RUNC_DEL),
          RUNC_DEL))),
    P("cgroup_join", ("--runs", "20"), ("--runs", "3"), (
        M("joining a v1 cgroup by thread (a guest's C1), median", "ms",
          Ref("0 (this thread) to tasks"), Ref("pid to cgroup.procs"),
          "by pid"),)),
    P("userns_spawn", (), ("--runs", "5"), (
        M("spawn with the user namespace, median", "ms", Ref("userns"),
          Ref("privileged"), "privileged guest"),)),
    P("net_plumbing", (), ("--runs", "5"), (
        M("spawn with a port (veth + filter), median", "ms",
          Ref("spawn with vif"), Ref("spawn without vif"), "no port"),
        M("destroy with a port, median", "ms", Ref("destroy with vif"),
          Ref("destroy without vif"), "no port"))),
    # sparse disks: the 500 sustained boots are deleted only at the end,
    # and 500 preallocated 1 GiB disks do not fit on the 77 GB free here
    P("api_boot", ("--preallocate", "none"),
      ("--preallocate", "none", "--runs", "5", "--concurrent", "4",
       "--sustained", "40"), (
        M("all-in-one API → ACTIVE, sequential, p50 (sparse disks)", "ms",
          Ref(SEQ)),
        M("all-in-one API → ACTIVE, sequential, p95", "ms", Ref(SEQ, "p95")),
        M("all-in-one API → ACTIVE, concurrent, p50", "ms", Ref(CONC)),
        M("sustained boots/s, 8 in flight", "boots/s",
          extra("sustained boots/s (*"), target=t16(">=", 40)),
        M("service CPU per sustained boot", "ms",
          extra("sustained CPU ms per boot: service")))),
    P("api_boot", ("--split", "--sustained", "0"),
      ("--split", "--runs", "5", "--concurrent", "4", "--sustained", "0"), (
        M("split API+compute (RabbitMQ, PostgreSQL) → ACTIVE, p50", "ms",
          Ref(SEQ), target=t16("<=", 200)),
        M("split API → ACTIVE, p95", "ms", Ref(SEQ, "p95"),
          target=t16("<=", 400)),
        M("split delete → gone, p50", "ms", Ref("sequential delete -> 404"),
          target=t16("<=", 200))), key="api_boot_split"),
    P("api_boot_net", (), ("--runs", "5"), (
        M("API → ACTIVE with a project network port, p50", "ms",
          Ref("networks auto: POST -> ACTIVE"),
          Ref("networks none: POST -> ACTIVE"), "no network"),)),
    P("debian_ssh", (), ("--runs", "3"), (
        M("Debian guest: API request → sshd banner, p50", "ms",
          Ref("POST -> SSH banner*")),)),
    P("idle_memory", ("--guests", "200"), ("--guests", "20"), (
        M("host memory per idle guest outside its cgroup", "KiB",
          extra("host_side_memcg_per_guest_KiB"),
          target=t16("<=", 1024)),
        M("memory in each idle guest's own cgroup", "KiB",
          extra("guest_cgroup_usage_per_guest_KiB")),
        M("kernel threads per guest", "",
          extra("kernel_threads_new_per_guest_n"), target=t16("<=", 0)),
        M("launcher descriptors per guest", "",
          extra("launcher_fds_per_guest_n")),
        M("host processes outside the guests' cgroups", "",
          extra("launcher_children_outside_guest_cgroups"),
          target=t16("<=", 0)),
        M("guests alive by the launcher", "",
          extra("guests_alive_by_launcher")))),
    P("root_disk", ("--guests", "200"), ("--guests", "10"), (
        M("per-guest ext4 root: kernel threads per guest", "",
          extra("ext4-loop", sub="kthreads/guest")),
        M("per-guest ext4 root: make one root, p50", "ms",
          extra("ext4-loop", sub="make ms p50")),
        # the alternative issue #16 asked to measure, not pyct's backend
        M("btrfs subvolume + qgroup root: kernel threads per guest", "",
          extra("btrfs-qgroup", sub="kthreads/guest")),
        M("btrfs subvolume + qgroup root: make one root, p50", "ms",
          extra("btrfs-qgroup", sub="make ms p50")))),
    P("api_density", ("--guests", "200"), ("--guests", "20", "--runs", "5"), (
        M("at N guests: POST → ACTIVE, 8 in flight, p50", "ms",
          Ref("POST -> ACTIVE, *")),
        M("at N guests: GET /servers/detail, p50", "ms",
          Ref("GET /servers/detail at *")),
        M("at N guests: GET /servers?limit=100, p50", "ms",
          Ref("GET /servers?limit=100 at *"), target=t16("<=", 30)),
        M("at N guests: GET /servers/{id}, p50", "ms",
          Ref("GET /servers/id at *")),
        M("at N guests: DELETE → 404, p50", "ms", Ref("DELETE -> 404 *")))),
    P("console_flood", (), ("--runs", "1", "--seconds", "1"), (
        M("launcher CPU while a guest floods its console (default limit)",
          "cores", Ref("bounded launcher cores"),
          Ref("unbounded launcher cores"), "no limit"),)),
    P("dns_forwarder", ("--runs", "1000"), ("--runs", "100"), (
        M("DNS query from a guest through the gateway's forwarder, p50",
          "us", Ref("query via the gateway's forwarder"),
          Ref("query straight to the upstream (peer)"), "upstream direct"),
        M("a network's first ensure_bridge, forwarder on", "ms",
          Ref("first ensure_bridge, forwarder on", doc=1),
          Ref("first ensure_bridge, forwarder off", doc=1), "off"))),
    P("resize", ("--runs", "10"), ("--runs", "2"), (
        M("resize → VERIFY_RESIZE, p50", "ms",
          Ref("resize: POST -> VERIFY_RESIZE")),
        M("revertResize → ACTIVE, p50", "ms",
          Ref("revertResize: POST -> ACTIVE")),
        M("rebuild → ACTIVE, p50", "ms", Ref("rebuild: POST -> ACTIVE")))),
    P("rescue", ("--runs", "10"), ("--runs", "2"), (
        M("rescue → RESCUE, p50", "s", Ref("rescue: POST -> RESCUE")),
        M("unrescue → ACTIVE, p50", "ms", Ref("unrescue: POST -> ACTIVE")),
        M("suspend → SUSPENDED, p50", "ms",
          Ref("suspend: POST -> SUSPENDED")),
        M("resume → ACTIVE, p50", "ms", Ref("resume: POST -> ACTIVE")))),
    P("snapshot", ("--runs", "10"), ("--runs", "2"), (
        M("snapshot, 10 MiB changed → image active, p50", "ms",
          Ref("10 MiB changed: POST -> image active")),
        M("snapshot, 500 MiB changed → image active, p50", "s",
          Ref("500 MiB changed: POST -> image active")))),
    P("unshelve", ("--runs", "10"), ("--runs", "2"), (
        M("shelve → SHELVED_OFFLOADED, p50", "s",
          Ref("shelve: POST -> SHELVED_OFFLOADED")),
        M("unshelve → ACTIVE, p50", "ms",
          Ref("unshelve: POST -> ACTIVE")))),
    P("nova_boot", ("--runs", "20"), ("--runs", "3"), (
        M("API → ACTIVE, pyct's API next to Nova 34 with pyct's driver, "
          "p50", "ms", Ref(SEQ, doc=1), Ref("Nova API -> ACTIVE*"),
          "Nova 34"),)),
    P("evacuate", ("--runs", "5"), ("--runs", "1", "--servers", "4"), (
        M("evacuate a dead host's servers → all ACTIVE, median", "s",
          Ref("all servers")),
        M("the dead host's return (destroys its copies), median", "s",
          Ref("dead host's return")))),
    P("bus_reconnect", ("--runs", "5"), ("--runs", "1"), (
        M("RabbitMQ restored → first build ACTIVE, median", "s",
          Ref("oslo defaults"), Ref("tight (1/1/2 s)"), "tight timing"),)),
    P("cold_migrate", ("--runs", "5"), ("--runs", "1", "--sizes", "10"), (
        M("cold migration, 10 MB of changes, median", "s",
          Ref("10 MB of changes: total")),
        M("cold migration, 500 MB of changes, median", "s",
          Ref("500 MB of changes: total")))),
    P("secgroups", ("--runs", "30"), ("--runs", "3"), (
        M("TCP_RR between two guests, default group, median", "us",
          Ref("filtered, 0 rules"), Ref("no filtering"), "no filter"),
        M("TCP_RR with 100 more rules, median", "us",
          Ref("filtered, 100 rules"), Ref("no filtering"), "no filter"),
        M("TCP_CRR (connect + 1 byte), default group, median", "us",
          Ref("filtered, 0 rules", doc=1), Ref("no filtering", doc=1),
          "no filter"),
        # the part of #15's "rules apply within 1 s of the API call" that
        # this program times: the batch reaching the kernel
        M("a rule change reaching the kernel (2 ports × 100 rules), p95",
          "ms", Ref("secgroup_nft.apply", "p95", doc=2),
          target=Target("<=", 1000, "#15")))),
    P("secgroup_scale", ("--runs", "10"), ("--runs", "2", "--ports",
                                           "500,2000"), (
        M("a build's filter update at 500 ports, median", "ms",
          Ref("500 ports: delta, build"),
          Ref("500 ports: whole rewrite, inline members"), "whole rewrite"),
        M("a build's filter update at 2,000 ports, median", "ms",
          Ref("2000 ports: delta, build")),
        M("a delete's filter update at 2,000 ports, median", "ms",
          Ref("2000 ports: delta, delete")))),
    P("list_scale", (), ("--runs", "3"), tuple(
        M(f"{db}: GET {path} with 1,000 servers, p50", "ms",
          Ref(f"{db}: GET {pattern}"), target=t16("<=", limit))
        for db in ("sqlite", "postgresql")
        for path, pattern, limit in (
            ("/servers/detail", "/servers/detail (*, member)", 150),
            ("/servers?limit=100 (each page)",
             "/servers?limit=100 (each page)", 30)))),
    P("boot_statements", (), ("--runs", "10"), (
        M("SQL statements per boot, in process", "",
          extra("SQL statements per boot")),
        M("transactions per boot, in process", "",
          extra("transactions (COMMIT) per boot")))),
    P("image_upload", ("--runs", "10"), ("--runs", "2", "--size-mb", "20"), (
        M("image upload: PUT file → 204 (100 MiB tarball), p50", "s",
          Ref("upload (PUT .../file -> 204)")),
        M("image upload rate", "MiB/s", extra("median upload MiB/s")))),
    P("guest_view", ("--reads", "2000", "--spawns", "15", "--guests", "20"),
      ("--reads", "200", "--spawns", "2", "--guests", "4"), (
        M("/proc/meminfo read inside a guest (lxcfs), p50", "us",
          extra("meminfo_guest_us", sub="p50"),
          extra("meminfo_host_us", sub="p50"), "host's own"),
        M("lxcfs memory per guest", "KiB", extra("lxcfs_kb_per_guest")),
        M("guests' views back after lxcfs is killed", "s",
          extra("recovery_s", sub="seconds")))),
)
