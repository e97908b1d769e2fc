"""os-keypairs: a user's SSH keys (and x509 certificates), as Nova 2.96.

2.2 adds ``type`` (``ssh``/``x509``) and answers create with 201 and
delete with 204 (200 and 202 before); 2.10 lets an admin act for another
user (``user_id`` in the body or the query); 2.35 pages the list with
``limit``/``marker``; 2.75 refuses query parameters Nova does not know;
2.92 only imports (``public_key`` required) and allows ``@`` and ``.`` in
names. A generated key's private half is returned by the create that made
it and never stored. Another user's key pair is a 404.
"""

from __future__ import annotations

from pyct_driver import authorized_key, exception
from pyct_driver.api import quota_check, schemas, ssh_keys
from pyct_driver.api.request import (ApiRequest, Result, parse_int,
                                     reject_unknown_params)
from pyct_driver.api.state import Api
from pyct_driver.db import keypairs as db_keypairs

_P = "os_compute_api:os-keypairs:"


def _name(req: ApiRequest) -> dict:
    chars = r"^[_\-\@\. a-zA-Z0-9]+$" if req.at_least("2.92") \
        else r"^[_\- a-zA-Z0-9]+$"
    return {"allOf": [schemas.NAME, {"type": "string", "minLength": 1,
                                     "maxLength": 255, "pattern": chars}]}


def _check_query(req: ApiRequest, paged: bool) -> None:
    """From 2.75 a query parameter Nova does not know is a 400."""
    if not req.at_least("2.75"):
        return
    allowed = {"user_id"} | ({"limit", "marker"} if paged else set())
    reject_unknown_params(req.params.keys(), allowed)


def _create_schema(req: ApiRequest) -> dict:
    props: dict = {"name": _name(req), "public_key": {"type": "string"}}
    if req.at_least("2.2"):
        props["type"] = {"type": "string",
                         "enum": [ssh_keys.SSH, ssh_keys.X509]}
    if req.at_least("2.10"):
        props["user_id"] = {"type": "string"}
    required = ("name", "public_key") if req.at_least("2.92") else ("name",)
    return schemas._obj({"keypair": schemas._obj(props, required)},
                        ("keypair",))


def _user(api: Api, req: ApiRequest, rule: str,
          asked: str | None) -> str:
    """The user acted on: the caller, or (2.10, admin) ``asked``."""
    user = asked if (asked and req.at_least("2.10")) else \
        req.context.user_id
    api.policy.authorize(req.context, _P + rule, {"user_id": user})
    return user


def _brief(req: ApiRequest, row: dict) -> dict:
    out = {"name": row["name"], "public_key": row["public_key"],
           "fingerprint": row["fingerprint"]}
    if req.at_least("2.2"):
        out["type"] = row["type"]
    return out


def index(api: Api, req: ApiRequest) -> Result:
    _check_query(req, paged=req.at_least("2.35"))
    user = _user(api, req, "index", req.param("user_id"))
    limit = marker = None
    if req.at_least("2.35"):
        limit = parse_int(req.param("limit"), "limit")
        limit = api.settings.max_limit if limit is None \
            else min(limit, api.settings.max_limit)
        marker = req.param("marker")
    rows = db_keypairs.list_(api.db, user, limit=limit, marker=marker)
    body: dict = {"keypairs": [{"keypair": _brief(req, r)} for r in rows]}
    if limit and rows and len(rows) == limit:
        body["keypairs_links"] = [{
            "rel": "next",
            "href": f"{req.collection_url('os-keypairs')}?"
                    f"{req.next_query(rows[-1]['name'])}"}]
    return Result(200, body)


def show(api: Api, req: ApiRequest, keypair_name: str) -> Result:
    _check_query(req, paged=False)
    user = _user(api, req, "show", req.param("user_id"))
    row = db_keypairs.get(api.db, user, keypair_name)
    out = _brief(req, row)
    out.update({
        "user_id": row["user_id"], "id": row["id"], "deleted": False,
        "created_at": row["created_at"].isoformat(),
        "updated_at": (row["updated_at"].isoformat()
                       if row["updated_at"] else None),
        "deleted_at": None})
    return Result(200, {"keypair": out})


def create(api: Api, req: ApiRequest) -> Result:
    body = req.json_body()
    schemas.validate(_create_schema(req), body)
    data = body["keypair"]
    user = _user(api, req, "create", data.get("user_id"))
    key_type = data.get("type", ssh_keys.SSH)
    private = None
    if "public_key" in data:
        public = data["public_key"]
        fingerprint = ssh_keys.fingerprint(public, key_type)
    else:
        private, public, fingerprint = ssh_keys.generate(key_type, user)
    row = db_keypairs.create(
        api.db, user, data["name"], public, fingerprint, key_type,
        guard=quota_check.keypair_guard(api, req.context.project_id, user))
    out = _brief(req, row)
    out["user_id"] = row["user_id"]
    if private is not None:
        out["private_key"] = private
    return Result(201 if req.at_least("2.2") else 200, {"keypair": out})


def delete(api: Api, req: ApiRequest, keypair_name: str) -> Result:
    _check_query(req, paged=False)
    user = _user(api, req, "delete", req.param("user_id"))
    db_keypairs.delete(api.db, user, keypair_name)
    return Result(204 if req.at_least("2.2") else 202)


def key_data_for_boot(api: Api, req: ApiRequest,
                      key_name: str | None) -> str | None:
    """The public key a server boots with; an unknown name is a 400, and
    so is an SSH key stored before import checked it (InvalidKeypair)."""
    if key_name is None:
        return None
    try:
        row = db_keypairs.get(api.db, req.context.user_id, key_name)
    except exception.NotFound as err:
        raise exception.Invalid("Invalid key_name provided.") from err
    if row["type"] == ssh_keys.SSH:
        authorized_key.parse(row["public_key"])
    return row["public_key"]
