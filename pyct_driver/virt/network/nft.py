"""The one seam to the kernel's nf_tables: libnftables' JSON API.

pyct's NAT (``nat``) writes and reads its rules only through ``apply``
(a batch of libnftables JSON commands, applied atomically: all or none)
and ``list_ruleset`` (one table, as libnftables' JSON). The binding is
Debian's ``python3-nftables`` (the ``nftables`` module kept with the
nftables release, a thin wrapper of ``libnftables.so.1``). It is a
Debian package, not a wheel, so pyct's virtualenv does not see it: it is
loaded here, once, from the system's ``dist-packages``
(``NFTABLES_PATHS``; ``tools/ensure-host.sh`` installs it). Every error of
the binding or of the kernel becomes an ``exception.NftError``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import threading
from types import ModuleType

from pyct_driver import exception

# Where Debian (and Ubuntu) put the binding; the first one that exists wins.
NFTABLES_PATHS = ("/usr/lib/python3/dist-packages/nftables",)

_lock = threading.Lock()
_module: ModuleType | None = None
_handle = None


def _load() -> ModuleType:
    """The ``nftables`` module: an importable one, else Debian's copy."""
    global _module
    if _module is not None:
        return _module
    try:
        import nftables  # type: ignore[import-not-found]
        _module = nftables
        return _module
    except ImportError:
        pass
    for path in NFTABLES_PATHS:
        init = os.path.join(path, "__init__.py")
        if not os.path.exists(init):
            continue
        spec = importlib.util.spec_from_file_location(
            "nftables", init, submodule_search_locations=[path])
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        sys.modules["nftables"] = module
        try:
            spec.loader.exec_module(module)
        except (ImportError, OSError) as err:
            sys.modules.pop("nftables", None)
            raise exception.NftError(
                reason=f"loading {init}: {err}") from err
        _module = module
        return module
    raise exception.NftError(
        reason="the python3-nftables binding is not installed (apt install "
               "python3-nftables nftables)")


def _nft():
    """One libnftables context for the process (used under ``_lock``)."""
    global _handle
    if _handle is None:
        try:
            handle = _load().Nftables()
        except OSError as err:  # libnftables.so.1 missing
            raise exception.NftError(reason=str(err)) from err
        handle.set_json_output(True)
        handle.set_handle_output(True)
        _handle = handle
    return _handle


def _run(root: dict) -> dict:
    with _lock:
        nft = _nft()
        try:
            rc, out, err = nft.json_cmd(root)
        except (TypeError, ValueError, OSError) as error:
            raise exception.NftError(reason=str(error)) from error
    if rc != 0:
        raise exception.NftError(
            reason=(err or "").strip() or f"libnftables returned {rc}")
    if isinstance(out, str):
        return json.loads(out) if out.strip() else {}
    return out or {}


def apply(commands: list[dict]) -> None:
    """Run ``commands`` (libnftables JSON commands such as ``{"add":
    {"table": {...}}}``) as one atomic batch."""
    if commands:
        _run({"nftables": list(commands)})


def list_ruleset(table: dict) -> dict:
    """The JSON listing of one table, ``table`` being ``{"family": ...,
    "name": ...}``; an ``NftError`` when it does not exist."""
    return _run({"nftables": [{"list": {"table": {
        "family": table["family"], "name": table["name"]}}}]})
