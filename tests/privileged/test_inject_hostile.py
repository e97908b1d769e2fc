"""Host-side writes into a hostile guest root land inside it, whatever
symlinks the guest planted or swaps in while the host writes."""

from __future__ import annotations

import ctypes
import hashlib
import os
import pathlib
import threading

import pytest

from pyct_driver import exception
from pyct_driver.virt import base
from pyct_driver.virt.kernel import files
from pyct_driver.virt.rootfs import inject

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPyct pyct@test"


def spec(**kw) -> base.InstanceSpec:
    vif = base.VifSpec(port_id="p", network_id="n", mac="fa:16:3e:00:00:01",
                       ip="10.241.250.7", prefixlen=24,
                       gateway="10.241.250.1",
                       dns_nameservers=("10.241.250.1",))
    values = dict(uuid="u", name="vm", hostname="guest-vm",
                  flavor=base.FlavorSpec(1, 64, 0), image_id="i",
                  key_data=KEY, vifs=(vif,))
    values.update(kw)
    return base.InstanceSpec(**values)


def snapshot(top: pathlib.Path) -> dict:
    """Every entry under ``top`` with its type, mode and content hash."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            p = pathlib.Path(dirpath, name)
            st = p.lstat()
            data = p.read_bytes() if p.is_file() and not p.is_symlink() \
                else b""
            out[str(p.relative_to(top))] = (
                st.st_mode, hashlib.sha256(data).hexdigest(),
                os.readlink(p) if p.is_symlink() else None)
    return out


@pytest.fixture
def host(tmp_path):
    """A host canary tree (looks like /etc and /root/.ssh) and a root."""
    canary = tmp_path / "pyct-canary"
    (canary / "etc").mkdir(parents=True)
    (canary / "etc" / "hostname").write_text("host-name\n")
    (canary / "etc" / "hosts").write_text("127.0.0.1 host\n")
    (canary / "ssh").mkdir()
    (canary / "ssh" / "authorized_keys").write_text("host key\n")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "root").mkdir()
    (root / "tmp").mkdir()
    before = snapshot(canary)
    yield canary, root
    assert snapshot(canary) == before, "a write escaped into the host"


def test_plain_root_gets_every_file(host):
    _, root = host
    inject.inject(str(root), spec())
    assert (root / "etc/hostname").read_text() == "guest-vm\n"
    hosts = (root / "etc/hosts").read_text()
    assert "127.0.0.1\tlocalhost" in hosts
    assert "10.241.250.7\tguest-vm" in hosts
    assert (root / "etc/resolv.conf").read_text() == \
        "nameserver 10.241.250.1\n"
    keys = root / "root/.ssh/authorized_keys"
    assert keys.read_text() == KEY + "\n"
    assert keys.stat().st_mode & 0o777 == 0o600
    assert (root / "root/.ssh").stat().st_mode & 0o777 == 0o700
    assert not [p for p in (root / "etc").iterdir() if ".pyct-" in p.name]


def test_no_dns_keeps_the_images_resolv_conf(host):
    _, root = host
    (root / "etc/resolv.conf").write_text("nameserver 192.0.2.53\n")
    vif = spec().vifs[0]
    inject.inject(str(root), spec(vifs=(base.VifSpec(
        port_id="p", network_id="n", mac=vif.mac, ip=vif.ip, prefixlen=24,
        gateway=vif.gateway),), key_data=None))
    assert (root / "etc/resolv.conf").read_text() == "nameserver 192.0.2.53\n"
    assert not (root / "root/.ssh").exists()


def test_symlinked_files_are_replaced_not_followed(host):
    canary, root = host
    (root / "etc/hostname").symlink_to(canary / "etc/hostname")
    (root / "etc/hosts").symlink_to("../../../../../../" +
                                    str(canary / "etc/hosts"))
    (root / "etc/resolv.conf").symlink_to("/proc/self/root" +
                                          str(canary / "etc/hosts"))
    inject.inject(str(root), spec())
    for name in ("hostname", "hosts", "resolv.conf"):
        assert not (root / "etc" / name).is_symlink()
    assert (root / "etc/hostname").read_text() == "guest-vm\n"


@pytest.mark.parametrize("target", ["absolute", "dotdot", "magic"])
def test_symlinked_ssh_dir_stays_in_root(host, target):
    canary, root = host
    link = {"absolute": str(canary / "ssh"),
            "dotdot": "../../../../../../../.." + str(canary / "ssh"),
            "magic": f"/proc/{os.getpid()}/root{canary / 'ssh'}"}[target]
    (root / "root/.ssh").symlink_to(link)
    # Inside the root the link dangles: the key write fails cleanly and
    # the other files are still written.
    with pytest.raises(exception.RootfsError, match="authorized_keys|.ssh"):
        inject.inject(str(root), spec())
    assert (root / "etc/hostname").read_text() == "guest-vm\n"
    if target != "magic":
        # the same link name, resolved as the guest sees it, exists: the
        # key lands there, inside the root
        inside = root / str(canary / "ssh").lstrip("/")
        inside.mkdir(parents=True)
        inject.inject(str(root), spec())
        assert (inside / "authorized_keys").read_text() == KEY + "\n"


def test_symlinked_etc_to_host_dir(host):
    canary, root = host
    (root / "etc").rmdir()
    (root / "etc").symlink_to(canary / "etc")
    with pytest.raises(exception.RootfsError):
        inject.inject(str(root), spec(key_data=None))
    # as the guest sees it, /etc -> <root>/<canary>/etc
    inside = root / str(canary / "etc").lstrip("/")
    inside.mkdir(parents=True)
    inject.inject(str(root), spec(key_data=None))
    assert (inside / "hostname").read_text() == "guest-vm\n"


def test_relative_dotdot_link_is_clamped_at_root(host):
    canary, root = host
    (root / "etc").rmdir()
    (root / "etc").symlink_to("../../../../../../../../../../etc-real")
    (root / "etc-real").mkdir()
    inject.inject(str(root), spec(key_data=None))
    assert (root / "etc-real/hostname").read_text() == "guest-vm\n"


def test_symlink_loop_fails_cleanly(host):
    _, root = host
    (root / "etc").rmdir()
    (root / "etc").symlink_to("/loop1")
    (root / "loop1").symlink_to("/loop2")
    (root / "loop2").symlink_to("/etc")
    with pytest.raises(exception.RootfsError, match="symbolic links"):
        inject.write_file(str(root), "/etc/hostname", b"x")


def test_directory_at_file_path_is_an_error(host):
    _, root = host
    (root / "etc/hostname").mkdir()
    with pytest.raises(exception.RootfsError):
        inject.write_file(str(root), "/etc/hostname", b"x")


def test_parents_made_one_by_one_with_owner_and_mode(host):
    _, root = host
    inject.write_file(str(root), "/a/b/c/f", b"data", 0o640, 1234, 5678)
    st = (root / "a/b/c/f").stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (1234, 5678, 0o640)
    assert (root / "a/b/c").stat().st_mode & 0o777 == 0o755
    with pytest.raises(exception.InvalidInput):
        inject.write_file(str(root), "/a/../../f", b"x")


def test_refuses_without_openat2(host, monkeypatch):
    _, root = host

    def enosys(*_a, **_k):
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(files, "openat2", enosys)
    with pytest.raises(exception.RootfsError, match="openat2"):
        inject.write_file(str(root), "/etc/hostname", b"x")
    assert not (root / "etc/hostname").exists()


_libc = ctypes.CDLL(None, use_errno=True)
_RENAME_EXCHANGE = 2


@pytest.mark.parametrize("mirror", [False, True])
def test_race_swapping_dir_and_symlink(host, mirror):
    """A thread exchanges /a/b between a real directory and a symlink to
    the host canary while the host writes /a/b/f 10,000 times. With
    ``mirror`` the link's target also exists inside the root, so writes
    through it succeed -- there."""
    canary, root = host
    (root / "a/b").mkdir(parents=True)
    inside = root / str(canary / "ssh").lstrip("/")
    if mirror:
        inside.mkdir(parents=True)
    (root / "a/b-link").symlink_to(canary / "ssh")
    stop = threading.Event()
    swaps = [0]

    def swapper():
        a = str(root / "a").encode()
        fd = os.open(a, os.O_RDONLY | os.O_DIRECTORY)
        try:
            while not stop.is_set():
                if _libc.renameat2(fd, b"b", fd, b"b-link",
                                   _RENAME_EXCHANGE) != 0:
                    raise OSError(ctypes.get_errno(), "renameat2")
                swaps[0] += 1
        finally:
            os.close(fd)

    thread = threading.Thread(target=swapper, daemon=True)
    thread.start()
    ok = failed = 0
    try:
        for i in range(10000):
            try:
                inject.write_file(str(root), "/a/b/f", b"%d" % i)
                ok += 1
            except exception.RootfsError:
                failed += 1
    finally:
        stop.set()
        thread.join()
    assert ok + failed == 10000
    assert swaps[0] > 100 and ok > 0
    if mirror:
        assert failed == 0
        assert (inside / "f").read_bytes().isdigit()
    # whichever of the two names is the real dir now holds our file
    real = [d for d in (root / "a").iterdir() if not d.is_symlink()]
    assert len(real) == 1 and (real[0] / "f").read_bytes().isdigit()
    assert not (canary / "ssh" / "f").exists()
    leftovers = [p for p in root.rglob("*") if ".pyct-" in p.name]
    assert not leftovers
    print(f"race: {ok} writes landed, {failed} failed cleanly, "
          f"{swaps[0]} swaps")
