"""Flavor and image queries: the catalogue tenants pick from.

Flavors are looked up by their public ``flavorid`` (never by name: clients
probe ids first and fall back to listing). Images are the local image
catalogue behind the Glance-compatible API. Rows leave as plain dicts.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from pyct_driver import exception
from pyct_driver.db import image_access, keyset, models
from pyct_driver.db.engine import Database, row_to_dict
from pyct_driver.db.image_access import Viewer


def _flavor_dict(row: models.Flavor) -> dict:
    values = row_to_dict(row)
    values["extra_specs"] = {s.key: s.value for s in row.extra_specs}
    return values


def flavor_create(db: Database, values: dict,
                  extra_specs: dict[str, str] | None = None) -> dict:
    """Create a flavor; a duplicate id or name is a 409."""
    with db.session() as session:
        for column, label in ((models.Flavor.flavorid, "id"),
                              (models.Flavor.name, "name")):
            key = "flavorid" if label == "id" else "name"
            if session.scalars(sa.select(models.Flavor).where(
                    column == values[key])).first():
                raise exception.Duplicate(
                    what=f"Flavor with {label} {values[key]}")
        row = models.Flavor(**values)
        row.extra_specs = [models.FlavorExtraSpec(key=k, value=v)
                           for k, v in (extra_specs or {}).items()]
        session.add(row)
        try:
            session.flush()
        except sa_exc.IntegrityError as err:
            raise exception.Duplicate(what="Flavor") from err
        return _flavor_dict(row)


def _visible_to(project_id: str | sa.BindParameter):
    """Public flavors and the private ones ``project_id`` was given."""
    return sa.or_(models.Flavor.is_public.is_(True),
                  models.Flavor.projects.any(
                      models.FlavorProject.project_id == project_id))


def _flavor_statement(projects: bool, visible: bool) -> sa.Select:
    query = sa.select(models.Flavor).where(
        models.Flavor.flavorid == sa.bindparam("flavorid"))
    if not projects:
        query = query.options(sa.orm.lazyload(models.Flavor.projects))
    if visible:
        query = query.where(_visible_to(sa.bindparam("project_id")))
    return query


# ``_flavor_row``'s statements by (projects, visible to a project): built
# once, as every server create reads its flavor
_FLAVOR = {(projects, visible): _flavor_statement(projects, visible)
           for projects in (False, True) for visible in (False, True)}


def _flavor_row(session, flavorid: str, project_id: str | None = None,
                projects: bool = True) -> models.Flavor:
    """The flavor; its access list read with it unless not ``projects``
    (every server create reads its flavor, never that list)."""
    row = session.scalars(_FLAVOR[projects, project_id is not None], {
        "flavorid": flavorid, "project_id": project_id}).first()
    if row is None:
        raise exception.FlavorNotFound(flavor_id=flavorid)
    return row


def flavor_get(db: Database, flavorid: str,
               project_id: str | None = None) -> dict:
    """One flavor; with ``project_id`` (a caller who is not an admin) a
    private flavor that project has no access to is not found, as in
    Nova."""
    with db.session() as session:
        return _flavor_dict(_flavor_row(session, flavorid, project_id,
                                        projects=False))


def flavor_list(db: Database, is_public: bool | None = True,
                project_id: str | None = None, admin: bool = False,
                limit: int | None = None, marker: str | None = None,
                min_ram: int | None = None, min_disk: int | None = None,
                sort_key: str = "flavorid", sort_dir: str = "asc"
                ) -> list[dict]:
    """Flavors ordered by ``sort_key`` then id (Nova's default: flavorid
    ascending), the page after the flavor ``marker``.

    Nova's visibility rules: a caller who is not ``admin`` sees public
    flavors and the private ones its ``project_id`` has access to, whatever
    ``is_public`` says; an admin gets public flavors plus its project's
    private ones (``is_public`` True), only private ones (False) or all
    (None).
    """
    query = sa.select(models.Flavor)
    if not admin:
        # Nova hides disabled flavors from everyone but admins
        query = query.where(models.Flavor.disabled.is_(False))
    if not admin or is_public:
        query = query.where(_visible_to(project_id) if project_id
                            else models.Flavor.is_public.is_(True))
    elif is_public is False:
        query = query.where(models.Flavor.is_public.is_(False))
    if min_ram is not None:
        query = query.where(models.Flavor.memory_mb >= min_ram)
    if min_disk is not None:
        query = query.where(models.Flavor.root_gb >= min_disk)
    column = getattr(models.Flavor, sort_key, None)
    order = [(c, sort_dir) for c in (column, models.Flavor.id)
             if c is not None]
    query = query.order_by(*keyset.order_by(order))
    with db.session() as session:
        if marker is not None:
            try:
                mrow = _flavor_row(session, marker,
                                   None if admin else project_id or "")
            except exception.FlavorNotFound as err:
                raise exception.MarkerNotFound(marker=marker) from err
            query = query.where(keyset.after(order, mrow))
        if limit is not None:
            query = query.limit(limit)
        return [_flavor_dict(r) for r in session.scalars(query)]


def flavor_update(db: Database, flavorid: str, values: dict) -> dict:
    with db.session() as session:
        row = _flavor_row(session, flavorid)
        for key, value in values.items():
            setattr(row, key, value)
        session.flush()
        return _flavor_dict(row)


def flavor_access_list(db: Database, flavorid: str) -> list[str]:
    """The projects given a flavor, sorted."""
    with db.session() as session:
        row = _flavor_row(session, flavorid)
        return sorted(p.project_id for p in row.projects)


def flavor_access_add(db: Database, flavorid: str, project_id: str
                      ) -> list[str]:
    """Give ``project_id`` a flavor; a second time is a 409."""
    with db.session() as session:
        row = _flavor_row(session, flavorid)
        if any(p.project_id == project_id for p in row.projects):
            raise exception.FlavorAccessExists(flavor_id=flavorid,
                                               project_id=project_id)
        row.projects.append(models.FlavorProject(project_id=project_id))
        try:
            session.flush()
        except sa_exc.IntegrityError as err:  # a concurrent add won
            raise exception.FlavorAccessExists(
                flavor_id=flavorid, project_id=project_id) from err
        return sorted(p.project_id for p in row.projects)


def flavor_access_remove(db: Database, flavorid: str, project_id: str
                         ) -> list[str]:
    """Take a flavor from ``project_id``; 404 if it had no access."""
    with db.session() as session:
        row = _flavor_row(session, flavorid)
        for access in row.projects:
            if access.project_id == project_id:
                row.projects.remove(access)
                session.flush()
                return sorted(p.project_id for p in row.projects)
        raise exception.FlavorAccessNotFound(flavor_id=flavorid,
                                             project_id=project_id)


def flavor_delete(db: Database, flavorid: str) -> None:
    with db.session() as session:
        session.delete(_flavor_row(session, flavorid))


def flavor_extra_specs_set(db: Database, flavorid: str,
                           specs: dict[str, str]) -> dict[str, str]:
    """Add or replace extra specs; return all of the flavor's specs."""
    with db.session() as session:
        row = _flavor_row(session, flavorid)
        current = {s.key: s for s in row.extra_specs}
        for key, value in specs.items():
            if key in current:
                current[key].value = value
            else:
                row.extra_specs.append(
                    models.FlavorExtraSpec(key=key, value=value))
        session.flush()
        return {s.key: s.value for s in row.extra_specs}


def flavor_extra_spec_delete(db: Database, flavorid: str, key: str) -> None:
    """Remove one extra spec; a missing flavor or key is a 404."""
    with db.session() as session:
        row = _flavor_row(session, flavorid)
        for spec in row.extra_specs:
            if spec.key == key:
                row.extra_specs.remove(spec)
                return
        raise exception.NotFound(
            f"Flavor {flavorid} has no extra specs with key {key}.")


def image_create(db: Database, values: dict) -> dict:
    with db.session() as session:
        if session.get(models.Image, values["id"]) is not None:
            raise exception.Duplicate(what=f"Image {values['id']}")
        row = models.Image(**values)
        session.add(row)
        session.flush()
        return row_to_dict(row)


def image_update(db: Database, image_id: str, values: dict) -> dict:
    with db.session() as session:
        row = session.get(models.Image, image_id)
        if row is None:
            raise exception.ImageNotFound(image_id=image_id)
        for key, value in values.items():
            setattr(row, key, value)
        session.flush()
        return row_to_dict(row)


def image_get(db: Database, image_id: str) -> dict:
    with db.session() as session:
        row = session.get(models.Image, image_id)
        if row is None:
            raise exception.ImageNotFound(image_id=image_id)
        return row_to_dict(row)


def image_list(db: Database, filters: dict[str, Any] | None = None,
               limit: int | None = None, marker: str | None = None,
               viewer: Viewer | None = None,
               member_status: str = "accepted") -> list[dict]:
    """Images, newest first; ``filters`` may hold name, ids (a list),
    status, owner and visibility (Glance's, ``all`` included).

    With a ``viewer`` only the images it may list come back (see
    ``image_access.list_clause``) and a marker it may not see is as
    unknown as a missing one; without one (operators) every image does.
    """
    filters = filters or {}
    query = sa.select(models.Image)
    for key in ("name", "status", "owner"):
        if filters.get(key) is not None:
            query = query.where(getattr(models.Image, key) == filters[key])
    if filters.get("ids") is not None:
        query = query.where(models.Image.id.in_(list(filters["ids"])))
    visibility = filters.get("visibility")
    if viewer is not None:
        query = query.where(image_access.list_clause(
            viewer, member_status, visibility))
    elif visibility not in (None, "all"):
        query = query.where(models.Image.visibility == visibility)
    query = query.order_by(models.Image.created_at.desc(),
                           models.Image.id.desc())
    if marker is not None:
        mark = (image_get(db, marker) if viewer is None else
                image_access.image_get_visible(db, marker, viewer))
        query = query.where(sa.or_(
            models.Image.created_at < mark["created_at"],
            sa.and_(models.Image.created_at == mark["created_at"],
                    models.Image.id < mark["id"])))
    if limit is not None:
        query = query.limit(limit)
    with db.session() as session:
        return [row_to_dict(r) for r in session.scalars(query)]


def image_create_for_project(db: Database, project_id: str, name: str,
                             values: dict | None = None) -> dict:
    """Register an image owned by ``project_id``: private and queued unless
    ``values`` say otherwise (a snapshot starts here); the owner is always
    the project."""
    row = {"id": str(uuid.uuid4()), "status": "queued",
           "visibility": "private", "min_disk": 0, "min_ram": 0,
           "properties": {}}
    row.update(values or {})
    image_access.check_visibility(row["visibility"])
    row.update(name=name, owner=project_id)
    return image_create(db, row)


def image_delete(db: Database, image_id: str) -> None:
    with db.session() as session:
        row = session.get(models.Image, image_id)
        if row is None:
            raise exception.ImageNotFound(image_id=image_id)
        session.delete(row)
