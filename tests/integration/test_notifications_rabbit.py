"""Versioned notifications read back from the real RabbitMQ.

A real ``pyct-api`` and ``pyct-compute`` (fake driver) over the deployment's
own RabbitMQ virtual host, with ``[oslo_messaging_notifications] driver =
messagingv2``. This test listens on the ``versioned_notifications`` topic
with oslo.messaging's notification listener, as a consumer such as
Ceilometer does, while the real openstacksdk creates, reboots, stops,
starts, pauses, unpauses, plugs and unplugs a port of, and deletes a
server, and boots one whose spawn
fails (the fake driver's ``fake_fail`` image property), which the API
then deletes itself while its compute host is down.
"""

from __future__ import annotations

import os
import threading
import time

import pytest
from oslo_config import cfg

from pyct_driver.rpc.transport import messaging
from tests.integration.conftest import FLAVOR_ID, wait_status, wait_until

HOST = "compute-a"


class Endpoint:
    """Collects every notification of the topic, any priority."""

    def __init__(self) -> None:
        self.got: list[dict] = []
        self.lock = threading.Lock()

    def _record(self, priority, ctxt, publisher_id, event_type, payload,
                metadata):
        with self.lock:
            self.got.append(dict(priority=priority, ctxt=ctxt,
                                 publisher_id=publisher_id,
                                 event_type=event_type, payload=payload))

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self._record("INFO", ctxt, publisher_id, event_type, payload,
                     metadata)

    def error(self, ctxt, publisher_id, event_type, payload, metadata):
        self._record("ERROR", ctxt, publisher_id, event_type, payload,
                     metadata)

    def of(self, uuid: str | None) -> list[dict]:
        """Notifications about instance ``uuid`` (None: compute.exception)."""
        with self.lock:
            return [n for n in self.got if
                    n["payload"]["nova_object.data"].get("uuid") == uuid]


@pytest.fixture
def listening(pipeline_factory):
    dep = pipeline_factory("postgresql", extra={
        "oslo_messaging_notifications": {"driver": "messagingv2"},
        "DEFAULT": {"service_down_time": 3}})
    conf = cfg.ConfigOpts()
    conf([], default_config_files=[])
    # the deployment's exchange, named in the target
    exchange = dep.sections["DEFAULT"]["control_exchange"]
    transport = messaging.get_notification_transport(
        conf, url=dep.sections["DEFAULT"]["transport_url"])
    endpoint = Endpoint()
    listener = messaging.get_notification_listener(
        transport, [messaging.Target(topic="versioned_notifications",
                                     exchange=exchange)], [endpoint])
    listener.start()
    try:
        yield dep, endpoint
    finally:
        listener.stop()
        listener.wait()
        transport.cleanup()


def _events(endpoint, uuid, count):
    return wait_until(lambda: (lambda got: got if len(got) >= count
                               else None)(endpoint.of(uuid)), 30,
                      f"{count} notifications about {uuid}")


def test_lifecycle_and_failed_create_from_rabbitmq(listening):
    dep, endpoint = listening
    [compute] = dep.start_all(HOST)
    blob = os.path.join(dep.workdir, "image.bin")
    failing = dep.manage("image", "import", "failing-image", blob,
                         "--property", "fake_fail=spawn")
    conn = dep.sdk_connection("user")

    server = conn.compute.create_server(
        name="noted", image_id=dep.image_id, flavor_id=FLAVOR_ID,
        networks="auto")
    wait_status(conn, server.id, "ACTIVE")
    for act, status in ((lambda: conn.compute.reboot_server(server, "SOFT"),
                         "ACTIVE"),
                        (lambda: conn.compute.stop_server(server), "SHUTOFF"),
                        (lambda: conn.compute.start_server(server), "ACTIVE"),
                        (lambda: conn.compute.pause_server(server), "PAUSED"),
                        (lambda: conn.compute.unpause_server(server),
                         "ACTIVE")):
        act()
        wait_status(conn, server.id, status)
        # the end notification follows the state change
        wait_until(lambda: endpoint.of(server.id)[-1]["event_type"].endswith(
            ".end"), 30, "the action's end notification")
    [net] = list(conn.network.networks())
    port = conn.compute.create_server_interface(server, net_id=net.id)
    conn.compute.delete_server_interface(port.port_id, server=server)
    actions = {a.action: a.request_id
               for a in conn.compute.server_actions(server.id)}
    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, interval=0.3, wait=30)

    got = _events(endpoint, server.id, 18)
    assert [n["event_type"] for n in got] == [
        f"instance.{a}.{p}" for a in ("create", "reboot", "power_off",
                                      "power_on", "pause", "unpause",
                                      "interface_attach", "interface_detach",
                                      "delete") for p in ("start", "end")]
    assert {n["publisher_id"] for n in got} == {f"nova-compute:{HOST}"}
    assert {n["priority"] for n in got} == {"INFO"}
    by_event = {n["event_type"]: n["payload"] for n in got}
    for action, event in (("create", "create"), ("reboot", "reboot"),
                          ("stop", "power_off"), ("start", "power_on"),
                          ("pause", "pause"), ("unpause", "unpause"),
                          ("attach_interface", "interface_attach"),
                          ("detach_interface", "interface_detach")):
        data = by_event[f"instance.{event}.end"]["nova_object.data"]
        # the request id a user sees in os-instance-actions
        assert data["request_id"] == actions[action], event
    end = by_event["instance.create.end"]
    assert end["nova_object.name"] == "InstanceCreatePayload"
    data = end["nova_object.data"]
    assert (data["state"], data["power_state"], data["host"],
            data["display_name"], data["image_uuid"]) == (
        "active", "running", HOST, "noted", dep.image_id)
    assert data["flavor"]["nova_object.data"]["flavorid"] == FLAVOR_ID
    assert by_event["instance.power_off.end"]["nova_object.data"][
        "power_state"] == "shutdown"
    assert by_event["instance.delete.end"]["nova_object.data"][
        "state"] == "deleted"
    attached = by_event["instance.interface_attach.end"]["nova_object.data"]
    assert port.port_id in {ip["nova_object.data"]["port_uuid"]
                            for ip in attached["ip_addresses"]}
    detached = by_event["instance.interface_detach.end"]["nova_object.data"]
    assert port.port_id not in {ip["nova_object.data"]["port_uuid"]
                                for ip in detached["ip_addresses"]}

    bad = conn.compute.create_server(
        name="doomed", image_id=failing, flavor_id=FLAVOR_ID,
        networks="none")
    wait_status(conn, bad.id, "ERROR")
    got = _events(endpoint, bad.id, 2)
    assert [(n["priority"], n["event_type"]) for n in got] == [
        ("INFO", "instance.create.start"), ("ERROR", "instance.create.error")]
    fault = got[1]["payload"]["nova_object.data"]["fault"]
    assert fault["nova_object.name"] == "ExceptionPayload"
    assert fault["nova_object.data"]["exception"] == "VirtError"
    exceptions = wait_until(lambda: [
        n for n in endpoint.of(None)
        if n["event_type"] == "compute.exception"], 30, "compute.exception")
    assert [(n["priority"], n["publisher_id"]) for n in exceptions] == [
        ("ERROR", f"nova-compute:{HOST}")]
    assert exceptions[0]["payload"] == fault

    # its host down, the API deletes it and says so itself, as nova-api
    compute.stop()
    time.sleep(4)  # past service_down_time
    conn.compute.delete_server(bad)
    conn.compute.wait_for_delete(bad, interval=0.3, wait=30)
    got = _events(endpoint, bad.id, 4)[2:]
    assert [n["event_type"] for n in got] == ["instance.delete.start",
                                              "instance.delete.end"]
    assert {n["publisher_id"].partition(":")[0] for n in got} == {
        "nova-api"}
    assert got[1]["payload"]["nova_object.data"]["state"] == "deleted"
