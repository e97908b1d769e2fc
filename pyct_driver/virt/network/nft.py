"""The binding to the kernel's nf_tables: libnftables' JSON API.

pyct's nf_tables tables (security groups, NAT) are written through Debian's
``python3-nftables``, the maintained wrapper of libnftables. pyct's venv
does not see the system's packages, so this one module loads the wrapper
from the system's dist-packages path on first use; nothing else in pyct
imports it. ``apply`` sends one batch of JSON commands, which the kernel
applies as one transaction (all or nothing); ``list_ruleset`` reads one
table back. Callers only ever name their own pyct-owned tables.
"""

from __future__ import annotations

import importlib.util
import threading
from typing import Any

from pyct_driver import exception

SYSTEM_MODULE = "/usr/lib/python3/dist-packages/nftables/nftables.py"
_lock = threading.Lock()
_handle: Any = None


def _load() -> Any:
    """One libnftables context, created on first use (it is not
    thread-safe, hence the lock around each use)."""
    global _handle
    if _handle is None:
        spec = importlib.util.spec_from_file_location(
            "pyct_system_nftables", SYSTEM_MODULE)
        if spec is None or spec.loader is None:
            raise exception.NetworkError(
                reason=f"python3-nftables is not installed "
                       f"({SYSTEM_MODULE})")
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
            handle = module.Nftables()
        except (OSError, ImportError) as err:
            raise exception.NetworkError(
                reason=f"cannot load libnftables: {err}") from err
        handle.set_json_output(True)
        handle.set_handle_output(False)
        _handle = handle
    return _handle


def _run(payload: dict) -> dict:
    with _lock:
        handle = _load()
        try:
            code, out, err = handle.json_cmd(payload)
        except Exception as exc:
            raise exception.NetworkError(
                reason=f"nftables refused the batch: {exc}") from exc
    if code != 0:
        raise exception.NetworkError(reason=f"nftables: {err.strip()}")
    return out if isinstance(out, dict) else {}


def apply(commands: list[dict]) -> None:
    """Run ``commands`` (libnftables JSON command objects such as
    ``{"add": {"table": ...}}``) as one atomic transaction."""
    if commands:
        _run({"nftables": commands})


def list_ruleset(table: str) -> dict:
    """The JSON listing of ``table`` ("<family> <name>", e.g.
    ``"bridge pyct_sg"``); an empty ruleset when it does not exist."""
    family, name = table.split()
    try:
        return _run({"nftables": [{"list": {"table": {
            "family": family, "name": name}}}]})
    except exception.NetworkError as err:
        if "No such file or directory" in str(err):
            return {"nftables": []}
        raise
