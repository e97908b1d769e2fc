"""Migration a7c3e9f1b2d4 on a database with services and compute nodes:
each existing row gets its uuid and is not forced down."""

from __future__ import annotations

import sqlalchemy as sa

from pyct_driver.db import migration


def test_existing_services_and_nodes_get_uuids(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    migration.upgrade(url, "e5b1c7d9a3f2")
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for host in ("a", "b"):
                conn.execute(sa.text(
                    "INSERT INTO services (host, \"binary\", topic, "
                    "report_count, disabled, created_at) VALUES "
                    "(:h, 'pyct-compute', 't', 1, 0, '2026-01-01')"),
                    {"h": host})
                conn.execute(sa.text(
                    "INSERT INTO compute_nodes (host, vcpus, memory_mb, "
                    "local_gb, vcpus_used, memory_mb_used, local_gb_used, "
                    "running_vms, cpu_allocation_ratio, ram_allocation_ratio,"
                    " disk_allocation_ratio, reserved_host_memory_mb, "
                    "created_at) VALUES (:h, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, "
                    "0, '2026-01-01')"), {"h": host})
        migration.upgrade(url)
        with engine.connect() as conn:
            services = conn.execute(sa.text(
                "SELECT uuid, forced_down FROM services")).all()
            nodes = conn.execute(sa.text(
                "SELECT uuid FROM compute_nodes")).all()
    finally:
        engine.dispose()
    assert len({u for u, _ in services}) == 2 and all(
        u and len(u) == 36 for u, _ in services)
    assert [bool(f) for _, f in services] == [False, False]
    assert len({u for (u,) in nodes}) == 2
