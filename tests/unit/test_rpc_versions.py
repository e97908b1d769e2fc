"""The compute RPC contract: what the client sends, the server answers.

The client (``rpc.client``) and the server (``compute.rpc_api``) keep their
own version constants; these tests fail when one side is bumped alone, when
the client sends a method at a version the server does not advertise or
whose arguments the endpoint does not take, and when the history misses a
line. ``[upgrade_levels] compute`` stops a too-new method before it is sent.
"""

from __future__ import annotations

import ast
import inspect
import pathlib
import re

import pytest
from oslo_config import cfg

from pyct_driver import conf as pyct_conf
from pyct_driver import exception
from pyct_driver.compute import rpc_api
from pyct_driver.compute.manager import ComputeManager
from pyct_driver.context import RequestContext
from pyct_driver.rpc import client as rpc_client
from pyct_driver.rpc import transport as rpc_transport

COMPUTE = pathlib.Path(rpc_api.__file__).parent


def _conf(cap: str | None = None) -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    for group, opts in pyct_conf.list_opts():
        conf.register_opts(opts, group=group)
    rpc_transport.register_opts(conf)
    conf([], default_config_files=[])
    if cap is not None:
        conf.set_override("compute", cap, group="upgrade_levels")
    return conf


class _Recorder:
    """Stands in for oslo.messaging's RPC client: records what would be
    sent (the version the client prepared, the method and its kwargs)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict]] = []
        self._version = ""

    def prepare(self, server: str, version: str,
                **options: object) -> "_Recorder":  # e.g. timeout
        self._version = version
        return self

    def cast(self, ctxt, method: str, **kwargs) -> None:
        self.sent.append((method, self._version, kwargs))

    call = cast


def _client(cap: str | None = None) -> tuple[rpc_client.ComputeClient,
                                             _Recorder]:
    conf = _conf(cap)
    client = rpc_client.ComputeClient(
        conf, rpc_transport.get_transport(conf, "fake://versions/"))
    recorder = _Recorder()
    client._client = recorder
    return client, recorder


def _public_methods() -> list[str]:
    """The client's RPC methods: public, taking a context first."""
    return [name for name, func in inspect.getmembers(
        rpc_client.ComputeClient, inspect.isfunction)
        if not name.startswith("_")
        and list(inspect.signature(func).parameters)[1:2] == ["ctxt"]]


def _send_all(client: rpc_client.ComputeClient) -> None:
    """Call every public client method with placeholder arguments."""
    ctxt = RequestContext("u", "p", ["member"])
    for name in _public_methods():
        method = getattr(client, name)
        params = list(inspect.signature(method).parameters)[2:]
        method(ctxt, "host-a", *[f"arg-{p}" for p in params])


def _history() -> dict[str, str]:
    """version -> the text of its history line (continuations joined)."""
    doc = rpc_api.__doc__.split("Version history:", 1)[1]
    return {m.group(1): m.group(2) for m in re.finditer(
        r"^\* (\d+\.\d+) - (.*?)(?=^\* |\Z)", doc, re.M | re.S)}


def _v(text: str) -> tuple[int, int]:
    major, minor = text.split(".")
    return int(major), int(minor)


def contract_problems(client_version: str, server_version: str,
                      history: dict[str, str],
                      sent: list[tuple[str, str, dict]]) -> list[str]:
    """Everything wrong between what the client sends and what the server
    advertises; empty when both sides agree."""
    problems = []
    if _v(client_version)[0] != _v(server_version)[0]:
        problems.append("major versions differ")
    if _v(client_version) != _v(server_version):
        problems.append(f"client {client_version} and server "
                        f"{server_version} bumped apart")
    if server_version not in history:
        problems.append(f"no history line for {server_version}")
    newest = max((version for _, version, _ in sent), key=_v)
    if newest != client_version:
        problems.append(f"client sends up to {newest}, says "
                        f"{client_version}")
    for method, version, kwargs in sent:
        if _v(version)[0] != _v(server_version)[0] or \
                _v(version) > _v(server_version):
            problems.append(f"{method} sent at {version}, server "
                            f"answers {server_version}")
        if not re.search(rf"\b{method}\b", history.get(version, "")):
            problems.append(f"{method} not in the history of {version}")
        endpoint = getattr(ComputeManager, method, None)
        if endpoint is None:
            problems.append(f"no endpoint {method}")
            continue
        try:
            inspect.signature(endpoint).bind(None, None, **kwargs)
        except TypeError as err:
            problems.append(f"{method}: {err}")
    return problems


def test_client_and_server_agree():
    client, recorder = _client()
    _send_all(client)
    assert {m for m, _, _ in recorder.sent} == set(_public_methods())
    public = {name for name, _ in inspect.getmembers(
        rpc_client.ComputeClient, inspect.isfunction)
        if not name.startswith("_")}
    assert public - set(_public_methods()) == {"can_send_version"}
    assert ComputeManager.target.version == rpc_api.RPC_API_VERSION
    assert contract_problems(rpc_client.RPC_API_VERSION,
                             rpc_api.RPC_API_VERSION, _history(),
                             recorder.sent) == []


@pytest.mark.parametrize("side", ["client", "server"])
def test_a_one_sided_bump_is_caught(side):
    client, recorder = _client()
    _send_all(client)
    major, minor = _v(rpc_api.RPC_API_VERSION)
    bumped = f"{major}.{minor + 1}"
    history = dict(_history(), **{bumped: "new_method"})
    versions = {"client": rpc_client.RPC_API_VERSION,
                "server": rpc_api.RPC_API_VERSION}
    versions[side] = bumped
    problems = contract_problems(versions["client"], versions["server"],
                                 history, recorder.sent)
    assert any("bumped apart" in p for p in problems), problems


def test_a_method_newer_than_the_server_or_unknown_is_caught():
    client, recorder = _client()
    _send_all(client)
    major, minor = _v(rpc_api.RPC_API_VERSION)
    newer = f"{major}.{minor + 1}"
    sent = recorder.sent + [("teleport_instance", newer, {})]
    problems = contract_problems(newer, newer, dict(
        _history(), **{newer: "teleport_instance"}), sent)
    assert "no endpoint teleport_instance" in problems
    assert any("bumped apart" in p for p in contract_problems(
        newer, rpc_api.RPC_API_VERSION, _history(), sent))
    # an argument the endpoint does not take
    method, version, kwargs = recorder.sent[0]
    problems = contract_problems(
        rpc_client.RPC_API_VERSION, rpc_api.RPC_API_VERSION, _history(),
        [(method, version, dict(kwargs, surprise=1))])
    assert any(p.startswith(f"{method}:") for p in problems), problems


def test_compute_never_imports_the_client_version():
    for path in COMPUTE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert node.module != "pyct_driver.rpc.client", path
                assert not (node.module == "pyct_driver.rpc" and any(
                    a.name == "client" for a in node.names)), path


def test_version_cap_refuses_newer_methods_before_sending():
    ctxt = RequestContext("u", "p", ["member"])
    client, recorder = _client("1.4")
    with pytest.raises(exception.RPCVersionCapError) as caught:
        client.resize_instance(ctxt, "host-a", "uuid-1", "mig-1")
    assert recorder.sent == []
    assert caught.value.code == 409
    assert caught.value.message == (
        "resize_instance needs compute RPC API 1.5, but [upgrade_levels] "
        "compute caps it at 1.4; it is available once every compute "
        "service is upgraded.")
    client.get_diagnostics(ctxt, "host-a", "uuid-1")
    client.build_and_run_instance(ctxt, "host-a", "uuid-1")
    assert [(m, v) for m, v, _ in recorder.sent] == [
        ("get_diagnostics", "1.4"), ("build_and_run_instance", "1.0")]


@pytest.mark.parametrize("cap", ["", "auto"])
def test_empty_or_auto_cap_sends_everything(cap):
    client, recorder = _client(cap)
    assert client.version_cap is None
    _send_all(client)
    assert len(recorder.sent) == len(_public_methods())


def test_cap_of_another_major_refuses_everything():
    assert not rpc_client.version_allowed("1.0", "2.0")
    assert not rpc_client.version_allowed("2.0", "1.9")
    assert rpc_client.version_allowed("1.9", "1.10")
    assert not rpc_client.version_allowed("1.10", "1.9")
    assert rpc_client.version_allowed("1.5", None)


@pytest.mark.parametrize("cap", ["1", "latest", "1.4; rm", "1.4.2"])
def test_malformed_cap_is_refused_by_the_option(cap):
    with pytest.raises(ValueError):
        _conf(cap)
