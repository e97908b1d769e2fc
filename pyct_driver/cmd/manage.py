"""``pyct-manage``: the operator's command line.

``db sync`` migrates the database and ``db version`` prints its schema
revision (None before the first sync); ``flavor create|list`` manages flavors
(extra specs validated exactly as the admin API does; ``--private
--project P`` gives a private flavor to P); ``image import``
registers an image file after the configured virt driver accepted it (the
container driver unpacks and checks it; ``--visibility``/``--owner`` make
it private or shared to a project), ``image create-busybox`` builds
the demo image from the host's static busybox first, and ``image
create-debian`` a Debian guest with systemd (debootstrap; cached on the host);
``image list`` lists the registered images; ``server exec`` runs a
command in a guest on this host, confined (``server_exec``); ``host
stop`` stops what the compute service started on this host
(``host_stop``); ``host drain HOST`` disables a host and cold-migrates
its servers away (``host_drain``); ``host evacuate-check HOST`` lists
what an evacuation of HOST would move and where (``evacuate_check``);
``service list`` shows the services, up or down (``service_list``);
``endpoint register`` puts pyct's services into Keystone's catalog
(``endpoint_register``).
"""

from __future__ import annotations

# first: eventlet must be unimportable before any oslo library loads
from pyct_driver import no_eventlet  # noqa: F401,I100

import contextlib
import os
import sys
import tempfile
import uuid as uuidlib

from oslo_config import cfg

from pyct_driver import exception, plugins
from pyct_driver.progress import SILENT, Progress
from pyct_driver.api import flavors as api_flavors
from pyct_driver.api import images as api_images
from pyct_driver.cmd import (bootstrap, endpoint_register, evacuate_check,
                             host_drain, host_stop, server_exec,
                             service_list)
from pyct_driver.db import catalog as db_catalog
from pyct_driver.db import image_access
from pyct_driver.db import migration
from pyct_driver.db.engine import Database
from pyct_driver.virt.rootfs import busybox, debian


def _props(pairs: list[str] | None) -> dict[str, str]:
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise exception.InvalidInput(
                reason=f"property {pair!r} is not KEY=VALUE")
        out[key] = value
    return out


def _add_parsers(subparsers) -> None:
    db = subparsers.add_parser("db", help="database schema")
    dbsub = db.add_subparsers(dest="action", required=True)
    sync = dbsub.add_parser("sync", help="migrate to the newest schema")
    sync.add_argument("--revision", default="head")
    dbsub.add_parser("version", help="print the schema revision")

    flavor = subparsers.add_parser("flavor", help="flavors")
    fsub = flavor.add_subparsers(dest="action", required=True)
    create = fsub.add_parser("create", help="create a flavor")
    create.add_argument("flavor_name", metavar="NAME")
    create.add_argument("--vcpus", type=int, required=True)
    create.add_argument("--ram", type=int, required=True, help="MiB")
    create.add_argument("--disk", type=int, required=True, help="GiB")
    create.add_argument("--swap", type=int, default=0, help="MiB")
    create.add_argument("--ephemeral", type=int, default=0, help="GiB")
    create.add_argument("--id", dest="flavorid")
    create.add_argument("--private", action="store_true")
    create.add_argument("--project", action="append", metavar="PROJECT",
                        help="give this project the private flavor "
                             "(repeatable)")
    create.add_argument("--if-missing", action="store_true",
                        help="succeed quietly when the name exists")
    create.add_argument("--property", action="append", metavar="KEY=VALUE",
                        help="extra spec, e.g. quota:cpu_shares=512")
    fsub.add_parser("list", help="list flavors")

    image = subparsers.add_parser("image", help="images")
    isub = image.add_subparsers(dest="action", required=True)
    imp = isub.add_parser("import", help="register an image file")
    imp.add_argument("image_name", metavar="NAME")
    imp.add_argument("file")
    imp.add_argument("--id", dest="image_id")
    imp.add_argument("--property", action="append", metavar="KEY=VALUE")
    imp.add_argument("--visibility", choices=image_access.VISIBILITIES,
                     help="Glance visibility (default public; private and "
                          "shared images need --owner to be seen by any "
                          "project)")
    imp.add_argument("--owner", metavar="PROJECT_ID",
                     help="project that owns the image (default none: "
                          "only admins may change it)")
    imp.add_argument("--if-missing", action="store_true",
                     help="succeed quietly when the name exists")
    bb = isub.add_parser("create-busybox",
                         help="build and import a busybox image")
    bb.add_argument("image_name", metavar="NAME")
    bb.add_argument("--busybox", default="/bin/busybox")
    bb.add_argument("--if-missing", action="store_true")
    deb = isub.add_parser("create-debian",
                          help="build (or reuse the cached) Debian image "
                               "and import it")
    deb.add_argument("image_name", metavar="NAME")
    deb.add_argument("--suite", default="bookworm")
    deb.add_argument("--mirror", help="default: the host's apt mirror")
    deb.add_argument("--cache-dir", default=debian.DEFAULT_CACHE_DIR)
    deb.add_argument("--if-missing", action="store_true")
    isub.add_parser("list", help="list images")
    server_exec.add_parser(subparsers)
    hsub = host_stop.add_parser(subparsers)
    evacuate_check.add_to(hsub)
    host_drain.add_to(hsub)
    service_list.add_parser(subparsers)
    endpoint_register.add_parser(subparsers)


command_opt = cfg.SubCommandOpt("command", title="commands",
                                handler=_add_parsers)


def _db_cmd(conf: cfg.ConfigOpts) -> int:
    url = conf.database.connection
    if conf.command.action == "sync":
        bootstrap.database(conf).dispose()  # makes a SQLite file's folder
        migration.upgrade(url, conf.command.revision)
    # "None" for a database never migrated (alembic's word for it)
    print(migration.current(url))
    return 0


def _flavor_cmd(conf: cfg.ConfigOpts, db: Database) -> int:
    cmd = conf.command
    if cmd.action == "list":
        for f in db_catalog.flavor_list(db, is_public=None, admin=True):
            print(f"{f['flavorid']}\t{f['name']}\tvcpus={f['vcpus']}\t"
                  f"ram={f['memory_mb']}\tdisk={f['root_gb']}\t"
                  f"{f['extra_specs']}")
        return 0
    if cmd.if_missing and any(f["name"] == cmd.flavor_name for f in
                              db_catalog.flavor_list(db, is_public=None,
                                                     admin=True)):
        return 0
    if cmd.project and not cmd.private:
        raise exception.InvalidInput(
            reason="--project gives access to a private flavor; add "
                   "--private")
    flavor = api_flavors.create_flavor(
        db, cmd.flavor_name, cmd.vcpus, cmd.ram, cmd.disk,
        flavorid=cmd.flavorid,
        swap=cmd.swap, ephemeral=cmd.ephemeral, is_public=not cmd.private,
        extra_specs=_props(cmd.property),
        allow_host_root=conf.container.allow_host_root_guests)
    for project in cmd.project or ():
        db_catalog.flavor_access_add(db, flavor["flavorid"], project)
    print(flavor["flavorid"])
    return 0


def _copy(src: str, dest: str, progress: Progress) -> None:
    """Copy in the kernel, in slices, reporting the bytes copied."""
    with open(src, "rb") as fin, open(dest, "wb") as fout:
        total = os.fstat(fin.fileno()).st_size
        done = 0
        while True:
            sent = os.sendfile(fout.fileno(), fin.fileno(), None, 8 << 20)
            if not sent:
                break
            done += sent
            progress.transfer("copying into the image store", done, total)


def import_image(conf: cfg.ConfigOpts, db: Database, name: str, path: str,
                 properties: dict[str, str],
                 image_id: str | None = None,
                 progress: Progress = SILENT) -> dict:
    """Copy ``path`` into the image store, let the driver accept it, and
    register it; on any failure nothing is left behind. A big file's bytes
    copied and unpacked are reported to ``progress``."""
    image_id = image_id or str(uuidlib.uuid4())
    store = os.path.join(conf.state_path, "images")
    os.makedirs(store, mode=0o700, exist_ok=True)
    dest = os.path.join(store, image_id)
    try:
        _copy(path, dest, progress)
    except OSError as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(dest)
        raise exception.InvalidImage(image=name, reason=str(err)) from err
    driver = plugins.load_virt_driver(conf.virt_driver, conf)
    try:
        info = driver.import_image(image_id, dest, progress)
        props = dict(info.properties)
        props.update(properties)
        # Glance's own fields travel with the properties; register_image
        # puts them into their columns
        props.update(id=image_id, disk_format=info.disk_format,
                     container_format=info.container_format,
                     size=os.path.getsize(dest))
        if info.checksum:
            props["checksum"] = info.checksum
        return api_images.register_image(db, name, dest, props)
    except BaseException:
        try:
            driver.delete_image(image_id)
        finally:
            os.unlink(dest)
        raise


def _image_cmd(conf: cfg.ConfigOpts, db: Database) -> int:
    cmd = conf.command
    if cmd.action == "list":
        for i in db_catalog.image_list(db):
            print(f"{i['id']}\t{i['name']}\t{i['status']}\t{i['size']}\t"
                  f"{i['visibility']}\t{i['owner'] or '-'}")
        return 0
    existing = db_catalog.image_list(db, {"name": cmd.image_name})
    if cmd.if_missing and existing:
        print(existing[0]["id"])
        return 0
    # stdout is the command's result (the image id); news goes to stderr
    progress = Progress(sys.stderr)
    if cmd.action == "import":
        props = _props(cmd.property)
        for key in ("visibility", "owner"):
            if getattr(cmd, key):
                props[key] = getattr(cmd, key)
        image = import_image(conf, db, cmd.image_name, cmd.file, props,
                             cmd.image_id, progress)
    elif cmd.action == "create-debian":
        tarball = debian.build_debian_rootfs(
            suite=cmd.suite, cache_dir=cmd.cache_dir, mirror=cmd.mirror,
            progress=progress)
        image = import_image(conf, db, cmd.image_name, tarball,
                             {"os_distro": "debian",
                              "os_version": cmd.suite}, progress=progress)
    else:
        with tempfile.TemporaryDirectory(prefix="pyct-busybox-") as tmp:
            tarball = os.path.join(tmp, "rootfs.tar")
            busybox.build_busybox_rootfs(tarball, cmd.busybox)
            image = import_image(conf, db, cmd.image_name, tarball,
                                 {"os_distro": "busybox"})
    print(image["id"])
    return 0


def main(argv: list[str] | None = None) -> int:
    conf = bootstrap.CONF
    conf.register_cli_opt(command_opt)
    conf = bootstrap.parse_args(argv if argv is not None else sys.argv,
                                log_to_stderr=True)
    try:
        if conf.command.name == "db":
            return _db_cmd(conf)
        if conf.command.name == "endpoint":
            return endpoint_register.run(conf)
        db = bootstrap.database(conf)
        if conf.command.name == "flavor":
            return _flavor_cmd(conf, db)
        if conf.command.name == "server":
            return server_exec.run(conf, db)
        if conf.command.name == "host" and conf.command.action == "drain":
            return host_drain.run(conf, db)
        if conf.command.name == "host":
            if conf.command.action == "evacuate-check":
                return evacuate_check.run(conf, db)
            return host_stop.run(conf, db)
        if conf.command.name == "service":
            return service_list.run(conf, db)
        return _image_cmd(conf, db)
    except exception.PyctError as err:
        print(f"ERROR: {err.message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
