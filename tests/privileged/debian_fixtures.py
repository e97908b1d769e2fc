"""A Debian guest (systemd as PID 1) for the privileged tests and the v2
lane: the image (``build_debian_rootfs``, cached under /var/cache/pyct/images;
inside the v2 lane's VM the host's cached tarball named by
``PYCT_TEST_DEBIAN_TAR``, since debootstrap under TCG takes minutes) and
guests whose root holds a NoCloud seed or a config drive's files before
their init starts (the metadata service is wired elsewhere).
"""

from __future__ import annotations

import json
import os
import time

import pytest

from pyct_driver.virt.rootfs.debian import build_debian_rootfs
from tests.privileged.guest_tools import Guests

IMAGE_ID = "debian-bookworm"
KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK1rlGzx5zejOgu6tSkydzh5570OqLD6"
       "+hiXq2szl0dF pyct-test")
USER_DATA = "#!/bin/sh\necho hello > /root/ud-ran\n"
# the network's nameservers as the seed and the config drive give them
# (written to resolv.conf only: no guest here has a network)
SEED_DNS = ["198.51.100.53", "198.51.100.54"]
DRIVE_DNS = ["203.0.113.53"]
UD_LINE = "pyct-agent: running user data"


@pytest.fixture(scope="module")
def debian_image(driver):
    start = time.monotonic()
    tar = os.environ.get("PYCT_TEST_DEBIAN_TAR") or build_debian_rootfs()
    built = time.monotonic()
    driver.import_image(IMAGE_ID, tar)
    print(f"\nimage: build/cache {built - start:.1f}s, import "
          f"{time.monotonic() - built:.1f}s ({tar})")
    return IMAGE_ID


def _seed(root: str, spec, config_drive: bool = False) -> None:
    """Write the NoCloud seed (or a config drive's files) into the root."""
    if config_drive:
        drive = os.path.join(root, "mnt/config/openstack/latest")
        os.makedirs(drive, exist_ok=True)
        with open(os.path.join(drive, "meta_data.json"), "w") as f:
            json.dump({"uuid": spec.uuid, "name": spec.name,
                       "hostname": f"{spec.hostname}.novalocal",
                       "public_keys": {"k": KEY}}, f)
        with open(os.path.join(drive, "user_data"), "w") as f:
            f.write(USER_DATA)
        with open(os.path.join(drive, "network_data.json"), "w") as f:
            json.dump({"links": [], "networks": [], "services": [
                {"type": "dns", "address": a} for a in DRIVE_DNS]}, f)
        return
    seed = os.path.join(root, "var/lib/cloud/seed/nocloud-net")
    os.makedirs(seed, exist_ok=True)
    with open(os.path.join(seed, "meta-data"), "w") as f:
        # as pyct's metadata content writes it: JSON (which is YAML too)
        json.dump({"instance-id": spec.uuid, "local-hostname": spec.hostname,
                   "public-keys": [KEY]}, f)
    with open(os.path.join(seed, "user-data"), "w") as f:
        f.write(USER_DATA)
    with open(os.path.join(seed, "network-config"), "w") as f:
        json.dump({"version": 2, "ethernets": {"eth0": {
            "match": {"macaddress": "fa:16:3e:00:00:01"},
            "nameservers": {"addresses": SEED_DNS}}}}, f)


@pytest.fixture
def seeded(driver, monkeypatch):
    """Boot guests whose root holds a NoCloud seed before init starts."""
    specs = {}
    original = driver.roots.mount

    def mount(uuid, layers):
        handle = original(uuid, layers)
        if uuid in specs:
            _seed(handle.path, *specs[uuid])
        return handle

    monkeypatch.setattr(driver.roots, "mount", mount)
    g = Guests(driver)
    try:
        yield g, specs
    finally:
        g.close()
