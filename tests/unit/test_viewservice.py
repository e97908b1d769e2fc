"""The view service's supervisor without lxcfs: it never invents a
service, and it only ever signals the lxcfs serving its own directory."""

from __future__ import annotations

import os

from pyct_driver.virt.process.caller import viewservice


def test_without_lxcfs_guests_get_no_views(tmp_path):
    svc = viewservice.ViewService(str(tmp_path), lambda: [],
                                  binary="no-such-lxcfs-binary")
    assert not svc.live()
    assert svc.ensure() is None
    assert svc.recover() == {}
    assert svc.service_pid() is None


def test_a_recycled_pid_is_not_taken_for_the_service(tmp_path):
    svc = viewservice.ViewService(str(tmp_path), lambda: [])
    with open(svc.pid_file, "w") as f:
        f.write(str(os.getpid()))  # this test's python, not lxcfs
    assert svc.service_pid() is None


def test_a_stopped_service_is_not_restarted_by_its_watcher(tmp_path):
    started = []
    svc = viewservice.ViewService(str(tmp_path), lambda: [])
    svc.ensure = lambda: started.append(1)  # would start one
    svc.stop()
    assert svc.recover() == {} and not started
