"""Reading image archive formats: which layer blobs an archive holds, in
what order, with what digests, and what its config says.

Three formats are understood: a plain rootfs tarball (one layer, its digest
computed), an OCI image layout (a directory or an uncompressed tar of one:
``oci-layout``, ``index.json``, ``blobs/sha256/...``) and a ``docker save``
archive (``manifest.json`` with ``Config`` and ``Layers``). The digests
returned are the ones each blob must hash to; the store verifies them while
unpacking. Nothing here writes to disk.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import platform
import re
import shlex
import stat
import tarfile
from typing import BinaryIO, Callable, ContextManager, Iterator

from pyct_driver import exception
from pyct_driver.virt import base
from pyct_driver.virt.rootfs import unpack

_DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")
_BLOB_PATH = re.compile(r"^blobs/sha256/([0-9a-f]{64})$")
_SCAN_LIMIT = 10_000  # an OCI/docker archive has far fewer members
_JSON_LIMIT = 16 << 20
_MANIFEST_TYPES = ("application/vnd.oci.image.manifest.v1+json",
                   "application/vnd.docker.distribution.manifest.v2+json")
_INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
                "application/vnd.docker.distribution.manifest.list.v2+json")
_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm",
           "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


@dataclasses.dataclass(frozen=True)
class Blob:
    """One layer blob: where it is, and the sha256 (hex) it must have."""

    name: str
    digest: str
    open: Callable[[], ContextManager[BinaryIO]]


def command_line(config: dict) -> str | None:
    """An OCI/docker config's Entrypoint + Cmd as one shell-quoted line."""
    cfg = config.get("config") or {}
    argv = list(cfg.get("Entrypoint") or []) + list(cfg.get("Cmd") or [])
    return shlex.join(str(a) for a in argv) if argv else None


def _config_properties(config: dict, fmt: str) -> dict[str, str]:
    props = {"pyct_image_format": fmt}
    cmd = command_line(config)
    if cmd:
        props["os_command_line"] = cmd
    arch = config.get("architecture")
    if arch:
        rev = {v: k for k, v in _GOARCH.items()}
        props["architecture"] = rev.get(arch, arch)
    cfg = config.get("config") or {}
    if cfg.get("Env"):
        props["pyct_env"] = json.dumps(list(cfg["Env"]))
    if cfg.get("WorkingDir"):
        props["pyct_working_dir"] = str(cfg["WorkingDir"])
    if cfg.get("User"):
        props["pyct_user"] = str(cfg["User"])
    return props


class _Source:
    """An archive: a directory or a tar file, read by relative name."""

    def __init__(self, path: str, image: str) -> None:
        self.path = path
        self.image = image
        self.tar: tarfile.TarFile | None = None
        self.members: dict[str, tarfile.TarInfo] = {}

    def bad(self, reason: str) -> exception.InvalidImage:
        return exception.InvalidImage(image=self.image, reason=reason)

    def has(self, name: str) -> bool:
        if self.tar is not None:
            return name in self.members
        return os.path.isfile(os.path.join(self.path, name))

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[BinaryIO]:
        if ".." in name.split("/") or name.startswith("/"):
            raise self.bad(f"reference {name!r} leaves the archive")
        if self.tar is not None:
            ti = self.members.get(name)
            if ti is None or not ti.isreg():
                raise self.bad(f"{name!r} is missing from the archive")
            f = self.tar.extractfile(ti)
            assert f is not None
            yield f
            return
        try:
            fd = os.open(os.path.join(self.path, name),
                         os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as err:
            raise self.bad(f"cannot open {name!r}: {err}") from err
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise self.bad(f"{name!r} is not a regular file")
            yield f

    def read_json(self, name: str, digest: str | None = None) -> dict:
        with self.open(name) as f:
            data = f.read(_JSON_LIMIT + 1)
        if len(data) > _JSON_LIMIT:
            raise self.bad(f"{name!r} is too large")
        if digest is not None and hashlib.sha256(data).hexdigest() != digest:
            raise self.bad(f"{name!r} does not match digest sha256:{digest}")
        try:
            return json.loads(data)
        except ValueError as err:
            raise self.bad(f"{name!r} is not JSON: {err}") from err

    def blob_name(self, descriptor: dict) -> tuple[str, str]:
        m = _DIGEST.match(str(descriptor.get("digest", "")))
        if not m:
            raise self.bad(f"unsupported digest {descriptor.get('digest')!r}"
                           " (only sha256 is accepted)")
        return f"blobs/sha256/{m.group(1)}", m.group(1)

    def blob(self, name: str, digest: str) -> Blob:
        return Blob(name=name, digest=digest,
                    open=lambda: self.open(name))

    # -- formats ----------------------------------------------------------

    def describe(self) -> tuple[list[Blob], base.ImageInfo]:
        size, md5, sha = self._file_hashes()
        if self.has("oci-layout"):
            blobs, props = self._oci()
            cfmt = "docker"
        elif self.has("manifest.json"):
            blobs, props = self._docker()
            cfmt = "docker"
        elif self.tar is not None or os.path.isdir(self.path):
            raise self.bad("neither an OCI layout nor a docker save archive")
        else:
            blobs = [Blob(name=os.path.basename(self.path), digest=sha,
                          open=lambda: open(self.path, "rb"))]
            props, cfmt = {"pyct_image_format": "rootfs-tar"}, "bare"
        if not blobs:
            raise self.bad("no layers")
        return blobs, base.ImageInfo(disk_format="raw",
                                     container_format=cfmt, size=size,
                                     checksum=md5, properties=props)

    def _file_hashes(self) -> tuple[int, str, str]:
        if os.path.isdir(self.path):
            blobs = os.path.join(self.path, "blobs", "sha256")
            return sum(e.stat(follow_symlinks=False).st_size
                       for e in os.scandir(blobs)), "", ""
        md5, sha, size = hashlib.md5(usedforsecurity=False), \
            hashlib.sha256(), 0
        with open(self.path, "rb") as f:
            while chunk := f.read(1 << 20):
                md5.update(chunk)
                sha.update(chunk)
                size += len(chunk)
        return size, md5.hexdigest(), sha.hexdigest()

    def _oci(self) -> tuple[list[Blob], dict[str, str]]:
        manifest_desc = self._pick(self.read_json("index.json"), depth=0)
        name, digest = self.blob_name(manifest_desc)
        manifest = self.read_json(name, digest)
        cname, cdigest = self.blob_name(manifest.get("config") or {})
        config = self.read_json(cname, cdigest)
        blobs = []
        for desc in manifest.get("layers") or []:
            if "zstd" in str(desc.get("mediaType", "")):
                raise self.bad("zstd-compressed layers are not supported")
            blobs.append(self.blob(*self.blob_name(desc)))
        return blobs, _config_properties(config, "oci")

    def _pick(self, index: dict, depth: int) -> dict:
        """The manifest descriptor for this host's platform."""
        descs = [d for d in index.get("manifests") or []
                 if isinstance(d, dict)]
        arch = _GOARCH.get(platform.machine(), platform.machine())

        def fits(d: dict) -> bool:
            p = d.get("platform")
            return not p or (p.get("architecture") == arch and
                             p.get("os", "linux") == "linux")
        for d in sorted(descs, key=lambda d: not d.get("platform")):
            if not fits(d):
                continue
            if d.get("mediaType") in _INDEX_TYPES and depth < 2:
                name, digest = self.blob_name(d)
                return self._pick(self.read_json(name, digest), depth + 1)
            if d.get("mediaType", _MANIFEST_TYPES[0]) in _MANIFEST_TYPES:
                return d
        raise self.bad(f"no manifest for linux/{arch} in the index")

    def _docker(self) -> tuple[list[Blob], dict[str, str]]:
        manifests = self.read_json("manifest.json")
        if not isinstance(manifests, list) or not manifests or \
                not isinstance(manifests[0], dict):
            raise self.bad("manifest.json is not a docker save manifest")
        entry = manifests[0]
        cname = str(entry.get("Config", ""))
        m = re.match(r"^(?:blobs/sha256/)?([0-9a-f]{64})(?:\.json)?$", cname)
        if not m:
            raise self.bad(f"config {cname!r} is not named by its digest")
        config = self.read_json(cname, m.group(1))
        diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
        paths = [str(p) for p in entry.get("Layers") or []]
        if len(diff_ids) != len(paths):
            raise self.bad("config diff_ids do not match the layer list")
        blobs = []
        for path, diff_id in zip(paths, diff_ids):
            dm = _DIGEST.match(str(diff_id))
            if not dm:
                raise self.bad(f"unsupported diff_id {diff_id!r}")
            # docker save ships layers uncompressed: blob digest = diff_id.
            pm = _BLOB_PATH.match(path)
            if pm and pm.group(1) != dm.group(1):
                raise self.bad(f"layer {path!r} disagrees with diff_id")
            blobs.append(self.blob(path, dm.group(1)))
        return blobs, _config_properties(config, "docker-save")


def _normalise(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name.rstrip("/")


@contextlib.contextmanager
def open_source(path: str, image: str) -> Iterator[_Source]:
    """Open the archive at ``path`` for ``describe``."""
    src = _Source(path, image)
    if os.path.isdir(path):
        yield src
        return
    try:
        with open(path, "rb") as f:
            compressed = unpack.open_stream(f, image) is not f
        tar = None if compressed else tarfile.open(path, "r:")
    except (OSError, tarfile.TarError) as err:
        raise exception.InvalidImage(image=image,
                                     reason=f"cannot read {path}: {err}") \
            from err
    if tar is None:
        yield src  # a compressed tar can only be a rootfs tarball
        return
    try:
        try:
            for _ in range(_SCAN_LIMIT):
                ti = tar.next()
                if ti is None:
                    break
                src.members[_normalise(ti.name)] = ti
            else:
                src.members.clear()  # far too big for a layout: a rootfs
        except tarfile.TarError as err:
            raise exception.InvalidImage(
                image=image, reason=f"cannot read {path}: {err}") from err
        if "oci-layout" in src.members or "manifest.json" in src.members:
            src.tar = tar
        yield src
    finally:
        tar.close()
