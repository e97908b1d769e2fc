"""The host's image store: image archives in, ordered read-only layer
directories out.

``import_image`` accepts a plain rootfs tarball (one layer), an OCI image
layout (a directory, or a tar of one) or a ``docker save`` archive. Each
layer is unpacked once, by ``unpack``, into a content-addressed cache
``layers/sha256-<hex>`` keyed by the sha256 of the layer blob exactly as
shipped (compressed if it was compressed) -- the digest a manifest names and
we verify, so a cache hit is never granted on a claim alone. Unpacking goes
to a temporary directory renamed into place, so a layer directory either is
complete or does not exist. ``images/<id>.json`` records an image's layers
(lowest first) and properties; ``holders/<id>.json`` records the layers an
instance booted with, so deleting the image does not pull the floor from
under it. Layers nobody references are garbage-collected.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import shutil
import tempfile
import threading
from typing import BinaryIO, Callable, Iterator

from pyct_driver import exception
from pyct_driver.progress import SILENT, Progress
from pyct_driver.virt import base
from pyct_driver.virt.rootfs import layer_refs
from pyct_driver.virt.rootfs import layout
from pyct_driver.virt.rootfs import unpack


class _HashingReader(io.RawIOBase):
    """A read-through stream that hashes what passes through it."""

    def __init__(self, raw: BinaryIO,
                 on_read: Callable[[int], None] | None = None) -> None:
        super().__init__()
        self.raw = raw
        self.sha = hashlib.sha256()
        self.done = 0
        self._on_read = on_read

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:  # type: ignore[override]
        data = self.raw.read(len(buf))
        n = len(data)
        buf[:n] = data
        self.sha.update(data)
        self.done += n
        if n and self._on_read is not None:
            self._on_read(self.done)
        return n

    def drain(self) -> str:
        while self.read(1 << 20):
            pass
        return self.sha.hexdigest()


def _reporter(progress: Progress, what: str, f: BinaryIO
              ) -> Callable[[int], None] | None:
    """Report bytes read from ``f`` (of its size, when it has one)."""
    if progress is SILENT:
        return None
    try:
        total: int | None = os.fstat(f.fileno()).st_size
    except (OSError, ValueError, AttributeError):
        # a member of an OCI tarball: tarfile's reader knows its size
        total = getattr(getattr(f, "raw", None), "size", None)
    return lambda done: progress.transfer(what, done, total)


class ImageStore:
    """Images and their layer cache under ``base_dir``."""

    def __init__(self, base_dir: str, max_bytes: int, max_files: int,
                 max_depth: int = 128) -> None:
        self.base_dir = base_dir
        self.limits = unpack.Limits(max_files=max_files, max_bytes=max_bytes,
                                    max_depth=max_depth)
        self._layers = os.path.join(base_dir, "layers")
        self._images = os.path.join(base_dir, "images")
        self._holders = os.path.join(base_dir, "holders")
        self._blobs = os.path.join(base_dir, "blobs")
        self._mutex = threading.Lock()
        for d in (base_dir, self._layers, self._images, self._holders,
                  self._blobs):
            os.makedirs(d, mode=0o700, exist_ok=True)

    # -- locking and records ----------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise record changes and GC, across threads and processes."""
        with self._mutex:
            fd = os.open(os.path.join(self.base_dir, ".lock"),
                         os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)

    def _record_path(self, image_id: str) -> str:
        if not image_id or "/" in image_id or image_id.startswith("."):
            raise exception.InvalidInput(reason=f"bad image id {image_id!r}")
        return os.path.join(self._images, image_id + ".json")

    @staticmethod
    def _write_json(path: str, data: dict) -> None:
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)

    def _read_record(self, image_id: str) -> dict:
        try:
            with open(self._record_path(image_id), encoding="utf-8") as f:
                rec = json.load(f)
        except FileNotFoundError as err:
            raise exception.ImageNotFound(image_id=image_id) from err
        if rec.get("state") != "ready":
            raise exception.ImageNotFound(image_id=image_id)
        return rec

    def _layer_dir(self, digest: str) -> str:
        return os.path.join(self._layers, "sha256-" + digest)

    # -- public API -------------------------------------------------------

    def has_image(self, image_id: str) -> bool:
        try:
            self._read_record(image_id)
        except exception.ImageNotFound:
            return False
        return True

    def layers(self, image_id: str) -> list[str]:
        """The image's layer directories, lowest first."""
        return [self._layer_dir(d)
                for d in self._read_record(image_id)["layers"]]

    def properties(self, image_id: str) -> dict[str, str]:
        return dict(self._read_record(image_id)["properties"])

    def acquire(self, holder: str, image_id: str) -> list[str]:
        """Pin the image's layers for ``holder`` (an instance uuid) and
        return them, lowest first; they survive ``delete_image`` until
        ``release(holder)``."""
        with self._locked():
            rec = self._read_record(image_id)
            self._write_json(self._holder_path(holder),
                             {"image": image_id, "layers": rec["layers"]})
        return [self._layer_dir(d) for d in rec["layers"]]

    def held_layers(self, holder: str) -> list[str]:
        """The layers ``holder`` pinned, lowest first."""
        try:
            with open(self._holder_path(holder), encoding="utf-8") as f:
                rec = json.load(f)
        except FileNotFoundError as err:
            raise exception.ImageNotFound(image_id=f"held by {holder}") \
                from err
        return [self._layer_dir(d) for d in rec["layers"]]

    def held_digests(self, holder: str) -> list[str]:
        """The layer digests ``holder`` pinned, lowest first."""
        return [os.path.basename(p)[7:] for p in self.held_layers(holder)]

    def blob_path(self, digest: str) -> str | None:
        """This host's copy of the layer blob ``digest`` (a hard link),
        if it kept one."""
        path = os.path.join(self._blobs, digest)
        return path if os.path.isfile(path) else None

    def keep_blob(self, digest: str, path: str) -> None:
        """Hard-link the blob at ``path`` into the blob cache (best
        effort: another file system keeps no copy)."""
        with contextlib.suppress(OSError):
            os.link(path, os.path.join(self._blobs, digest))

    def add_layer_image(self, image_id: str, base_digests: list[str],
                        blob: str, digest: str,
                        properties: dict[str, str]) -> None:
        """Record ``image_id`` as the ``base_digests`` layers plus the
        layer tar at ``blob`` (sha256 ``digest``), unpacked by the same
        hardened unpacker as any import."""
        def make() -> None:
            self._ensure_layer(image_id, layout.Blob(
                name="layer.tar", digest=digest,
                open=lambda: open(blob, "rb")))
            self.keep_blob(digest, blob)
        self._record(image_id, [*base_digests, digest], make, {
            "properties": properties, "disk_format": "raw",
            "container_format": "docker"})

    def _record(self, image_id: str, digests: list[str],
                make: Callable[[], None], ready: dict) -> None:
        """Record the image as importing (so a concurrent GC keeps the
        layers it reuses), ``make`` its layers, then mark it ready; a
        failure leaves no record and collects what it made."""
        record = self._record_path(image_id)
        with self._locked():
            if os.path.exists(record):
                raise exception.Duplicate(what=f"Image {image_id}")
            self._write_json(record, {"state": "importing",
                                      "layers": digests})
        try:
            make()
        except BaseException:
            with self._locked():
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(record)
                self._collect()
            raise
        with self._locked():
            self._write_json(record, {"state": "ready", "layers": digests,
                                      **ready})

    def release(self, holder: str) -> None:
        """Drop ``holder``'s pin (idempotent) and collect unused layers."""
        with self._locked():
            path = self._holder_path(holder)
            pinned = layer_refs.layers_named(path)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            # The usual case: its image is still there, so none of its
            # layers can go, and reading every other holder's record
            # (thousands on a full host) for each delete is skipped.
            if pinned is not None and \
                    pinned <= layer_refs.layers_in(self._images):
                return
            self._collect()

    def _holder_path(self, holder: str) -> str:
        if not holder or "/" in holder or holder.startswith("."):
            raise exception.InvalidInput(reason=f"bad holder {holder!r}")
        return os.path.join(self._holders, holder + ".json")

    def delete_image(self, image_id: str) -> None:
        """Forget the image (idempotent) and collect unused layers."""
        with self._locked():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._record_path(image_id))
            self._collect()

    def import_image(self, image_id: str, path: str,
                     progress: Progress = SILENT) -> base.ImageInfo:
        """Make the archive at ``path`` available as ``image_id``,
        reporting each layer's bytes read to ``progress``."""
        self._record_path(image_id)  # a bad id fails before any read
        with layout.open_source(path, image_id) as src:
            blobs, info = src.describe()

            def make() -> None:
                for n, blob in enumerate(blobs, 1):
                    what = (f"layer {n}/{len(blobs)}" if len(blobs) > 1
                            else "image")
                    self._ensure_layer(image_id, blob, progress, what)
                    self._keep_source_blob(path, blob)
            self._record(image_id, [b.digest for b in blobs], make, {
                "properties": info.properties,
                "disk_format": info.disk_format,
                "container_format": info.container_format})
        return info

    def _keep_source_blob(self, path: str, blob: layout.Blob) -> None:
        """Keep a blob that is a whole file (a plain rootfs tarball, an
        OCI directory's blob): a snapshot's layout links it from here."""
        src = path if os.path.isfile(path) and blob.name == \
            os.path.basename(path) else os.path.join(path, blob.name)
        if os.path.isfile(src):
            self.keep_blob(blob.digest, src)

    # -- layers -----------------------------------------------------------

    def _ensure_layer(self, image_id: str, blob: layout.Blob,
                      progress: Progress = SILENT, what: str = "image"
                      ) -> None:
        final = self._layer_dir(blob.digest)
        if os.path.isdir(final):
            # A hit still costs one read: the blob must really be the
            # bytes the cached layer was made from.
            with blob.open() as f:
                got = _HashingReader(f, _reporter(
                    progress, f"checking the cached {what}", f)).drain()
            self._check_digest(image_id, blob, got)
            return
        tmp = tempfile.mkdtemp(prefix=".tmp-", dir=self._layers)
        dest = os.path.join(tmp, "root")
        try:
            with blob.open() as f:
                reader = _HashingReader(f, _reporter(
                    progress, f"unpacking the {what}", f))
                unpack.unpack(reader, dest, image=image_id,
                              limits=self.limits, whiteouts=True)
                got = reader.drain()
            self._check_digest(image_id, blob, got)
            try:
                os.rename(dest, final)
            except OSError:
                if not os.path.isdir(final):  # not a lost race: real error
                    raise
        except OSError as err:
            raise exception.RootfsError(
                reason=f"storing layer {blob.digest}: {err}") from err
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @staticmethod
    def _check_digest(image_id: str, blob: layout.Blob, got: str) -> None:
        if got != blob.digest:
            raise exception.InvalidImage(
                image=image_id, reason=f"blob {blob.name} has digest "
                f"sha256:{got}, expected sha256:{blob.digest}")

    def _collect(self) -> None:
        """Remove layers no image record or holder names. Caller locks."""
        used = (layer_refs.layers_in(self._images) |
                layer_refs.layers_in(self._holders))
        for name in os.listdir(self._blobs):
            if name not in used:
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self._blobs, name))
        for name in os.listdir(self._layers):
            if name.startswith("sha256-") and name[7:] not in used:
                # Rename first so a half-deleted layer is never mistaken
                # for a complete one.
                doomed = os.path.join(self._layers, ".del-" + name[7:])
                os.rename(os.path.join(self._layers, name), doomed)
                shutil.rmtree(doomed, ignore_errors=True)

