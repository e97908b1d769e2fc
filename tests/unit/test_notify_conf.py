"""Which notifier the compute service builds from its configuration, and
what oslo.messaging's Notifier then puts on the wire (its ``test`` driver
records the messages a broker would get)."""

from __future__ import annotations

import pytest

from pyct_driver import context
from pyct_driver.notifications.notifier import Notifications
from pyct_driver.rpc import transport as rpc_transport
# after pyct's transport module, which picks oslo.service's thread backend
from oslo_messaging.notify import _impl_test  # noqa: I100
from tests.functional import compute_fixtures as fx


@pytest.fixture
def env(tmp_path):
    conf = fx.make_conf()
    db = fx.make_db(tmp_path)
    flavor, image = fx.seed_catalog(db, tmp_path)
    inst = fx.new_instance(db, flavor, image, "host-a")
    _impl_test.reset()
    yield conf, db, inst
    _impl_test.reset()
    conf.reset()
    conf.clear_override("driver", "oslo_messaging_notifications")
    conf.clear_override("transport_url")
    conf.clear_override("notification_format", "notifications")
    rpc_transport.cleanup()


def _notifications(conf, db, driver, fmt="versioned",
                   url="rabbit://guest:guest@127.0.0.1:5672/"):
    conf.set_override("driver", driver, "oslo_messaging_notifications")
    conf.set_override("transport_url", url)
    conf.set_override("notification_format", fmt, "notifications")
    return Notifications.from_conf(conf, db, "host-a")


@pytest.mark.parametrize("driver", [[], ["noop"]])
def test_no_driver_or_noop_is_off(env, driver):
    conf, db, _ = env
    assert not _notifications(conf, db, driver).enabled


def test_an_in_process_bus_reaches_nobody_so_it_is_off(env, caplog):
    conf, db, _ = env
    assert not _notifications(conf, db, ["messagingv2"],
                              url="inproc://").enabled
    assert "notifications are off" in caplog.text


def test_versioned_message_on_the_wire(env):
    conf, db, inst = env
    notes = _notifications(conf, db, ["test"])
    assert notes.legacy is None
    ctxt = context.RequestContext("u1", "p1", ["member"],
                                  auth_token="secret-token")
    notes.instance_event(ctxt, inst["uuid"], "reboot", "start")
    notes.exception(ctxt, ValueError("boom"))
    [(ctx1, msg1, prio1, _), (_, msg2, prio2, _)] = _impl_test.NOTIFICATIONS
    assert prio1 == "INFO" and prio2 == "ERROR"
    assert msg1["publisher_id"] == "nova-compute:host-a"
    assert msg1["event_type"] == "instance.reboot.start"
    assert msg1["payload"]["nova_object.name"] == "InstanceActionPayload"
    assert msg1["payload"]["nova_object.data"]["request_id"] == \
        ctxt.request_id
    assert msg2["event_type"] == "compute.exception"
    assert msg2["payload"]["nova_object.data"]["exception"] == "ValueError"
    # the context travels, the token does not
    assert ctx1["request_id"] == ctxt.request_id and ctx1["user"] == "u1"
    assert "auth_token" not in ctx1
    assert conf.notifications.versioned_notifications_topics == [
        "versioned_notifications"]


def test_both_formats(env):
    conf, db, inst = env
    notes = _notifications(conf, db, ["test"], fmt="both")
    ctxt = context.RequestContext("u1", "p1", ["member"])
    notes.instance_event(ctxt, inst["uuid"], "create", "error",
                         RuntimeError("no"))
    sent = {m["event_type"]: (m, prio) for _, m, prio, _ in
            _impl_test.NOTIFICATIONS}
    assert set(sent) == {"instance.create.error",
                         "compute.instance.create.error"}
    legacy, prio = sent["compute.instance.create.error"]
    assert prio == "ERROR" and legacy["publisher_id"] == "compute.host-a"
    assert legacy["payload"]["instance_id"] == inst["uuid"]
    assert legacy["payload"]["exception"] == "RuntimeError"
    assert legacy["payload"]["state"] == "building"
    # the legacy format has no compute.exception (Nova's neither)
    notes.exception(ctxt, RuntimeError("no"))
    assert len(_impl_test.NOTIFICATIONS) == 3


def test_unversioned_only(env):
    conf, db, inst = env
    notes = _notifications(conf, db, ["test"], fmt="unversioned")
    assert notes.versioned is None and notes.legacy is not None


def test_the_api_publishes_as_nova_api(env):
    conf, db, inst = env
    conf.set_override("driver", ["test"], "oslo_messaging_notifications")
    conf.set_override("transport_url", "rabbit://guest:guest@127.0.0.1/")
    conf.set_override("notification_format", "both", "notifications")
    notes = Notifications.from_conf(conf, db, "api-1", source="api")
    notes.instance_event(context.RequestContext("u1", "p1"), inst["uuid"],
                         "delete", "end")
    assert sorted(m["publisher_id"] for _, m, _, _ in
                  _impl_test.NOTIFICATIONS) == ["api.api-1", "nova-api:api-1"]
