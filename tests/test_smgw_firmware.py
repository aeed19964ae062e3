"""The firmware's `smgw` profile on the MicroPython unix port (firmware/main.py, tests/
firmware_harness.py) against the simulated gateways of tests/smgw_sim.py, with a real mosquitto:
its own TLS (mbedtls `tls`, the certificate pinned), digest, the core's families. The meters'
readings arrive with the gateway's exact values and capture times, the gateway is a device of its
own; a wrong password, a changed certificate and the lockout guard give clear diagnostics while
the firmware keeps running; the run ends when the gateway goes away (--exit-at-end)."""
import json
import time
from decimal import Decimal

import pytest

from broker import Broker
from firmware_harness import Firmware, Subscriber
from smgw_sim import STEP_S, T0, Gateway, expected, wait_until

METER = {"ppc": "1lgz0072999211", "theben": "UP-1EBZ0100123456", "emh": "1EMH0012345678"}


def settings(gw, **fields):
    smgw = {"family": gw.family, "host": "127.0.0.1", "port": gw.port, "user": gw.user,
            "password": gw.password, "interval_s": 10, "timeout_s": 5, "backoff_max_s": 10}
    smgw.update(fields)
    return {"meter": {"profile": "smgw"}, "smgw": smgw, "publish": {"diagnostics_interval": 1}}


def decoded(payload):
    return json.loads(payload, parse_float=Decimal)


def states(sub, meter):
    return [decoded(p) for p in sub.on("smartmeter/%s/state" % meter)]


def wait(sub, fw, condition, timeout=60, what="the messages"):
    assert sub.wait_until(condition, timeout), "no %s; firmware said:\n%s" % (
        what, "\n".join(fw.lines[-20:]))


def said(fw, text, timeout=60):
    """The firmware's console line holding text."""
    deadline = time.monotonic() + timeout
    for line in fw.lines:
        if text in line:
            return line
    while time.monotonic() < deadline:
        line = fw.wait_for("smgw:", max(deadline - time.monotonic(), 0.1))
        if text in line:
            return line
    raise AssertionError("no console line with %r" % text)


@pytest.mark.parametrize("family", ["ppc", "theben", "emh"])
def test_every_meter_arrives_exactly_with_the_gateways_times(tmp_path, family):
    with Gateway(tmp_path, family) as gw, Broker(tmp_path) as broker, \
            Subscriber(broker.port) as sub:
        fw = Firmware(tmp_path, settings(gw), broker.port, compiled=True).start()
        try:
            first = expected(family, T0)
            wait(sub, fw, lambda: all(states(sub, meter) for meter in first), what="states")
            for meter, registers in first.items():
                state = states(sub, meter)[0]
                assert state["timestamp"] == T0 and state["meter_id"] == meter
                assert state["values"] == dict(
                    (obis, {"value": Decimal(value), "unit": unit})
                    for obis, (value, unit) in registers.items())
            energy = sub.on("smartmeter/%s/energy/energy_in" % METER[family])
            kwh = Decimal(first[METER[family]]["1-0:1.8.0"][0])
            kwh = kwh if family == "ppc" else kwh / 1000
            assert decoded(energy[0]) == {"timestamp": T0, "value": kwh}

            gateway = decoded(sub.on("smartmeter/smgw/state")[-1])
            firmware = {"ppc": "33918-34868", "theben": "3.0.12-abcdef01", "emh": None}[family]
            assert gateway["values"]["1-0:0.2.0"]["value"] == firmware
            assert gateway["values"]["smgw_family"]["value"] == family
            assert abs(gateway["timestamp"] - time.time()) < 60   # its clock: the Date header
            device = json.loads(sub.on("homeassistant/sensor/%s_smgw/firmware/config"
                                       % _node(sub))[-1])["device"]
            assert device["sw_version"] == (firmware or "unknown")
            assert sub.on("smartmeter/smgw/status")[-1] == b"online"
            assert sub.on("smartmeter/%s/status" % METER[family])[-1] == b"online"

            gw.advance()   # the next quarter hour: read on the next cycle, nothing twice
            later = expected(family, T0 + STEP_S)
            wait(sub, fw, lambda: len(states(sub, METER[family])) >= 2, what="a second state")
            state = states(sub, METER[family])[1]
            assert state["timestamp"] == T0 + STEP_S
            assert state["values"]["1-0:1.8.0"]["value"] == Decimal(
                later[METER[family]]["1-0:1.8.0"][0])
            if family == "ppc":   # (the readings went out before the cycle's logout)
                wait_until(lambda: gw.session is None, 30, "the logout")
                assert gw.requests[-1][2] == "logout"
            wait(sub, fw, lambda: decoded(sub.on("smartmeter/smgw/diagnostics")[-1])[
                "polls_ok"] >= 2, what="the gateway's diagnostics")
            assert decoded(sub.on("smartmeter/smgw/diagnostics")[-1])["meters"] == len(first)

            gw.stop()      # the gateway goes away: the finite run ends once all is published
            stats = fw.wait(60)
            assert stats["gateway_error"] == "unreachable" and stats["polls_ok"] >= 2
            assert all(len(states(sub, meter)) == len(set(
                s["timestamp"] for s in states(sub, meter))) for meter in first)   # none twice
        finally:
            fw.stop()


def test_ppc_daily_mode_streams_yesterdays_page(tmp_path):
    """mode daily: yesterday's certified 15-minute values (the page is read row by row, never
    whole), every one exact with its capture time, spooled oldest first per meter."""
    import datetime
    from zoneinfo import ZoneInfo
    berlin = ZoneInfo("Europe/Berlin")
    today = datetime.datetime.now(berlin).replace(hour=0, minute=0, second=0, microsecond=0)
    start = int((today - datetime.timedelta(days=1)).timestamp())
    times = list(range(start, int(today.timestamp()) + STEP_S + 1, STEP_S))
    with Gateway(tmp_path, "ppc") as gw, Broker(tmp_path) as broker, \
            Subscriber(broker.port) as sub:
        fw = Firmware(tmp_path, settings(gw, mode="daily"), broker.port, compiled=True,
                      heapsize="384k").start()
        try:
            meters = expected("ppc", T0)
            wait(sub, fw, lambda: all(len(states(sub, m)) == len(times) for m in meters), 120,
                 "a day of states")
            for meter in meters:
                got = states(sub, meter)
                assert [s["timestamp"] for s in got] == times
                for state in got:
                    want = expected("ppc", state["timestamp"])[meter]
                    assert state["values"] == dict(
                        (obis, {"value": Decimal(value), "unit": unit})
                        for obis, (value, unit) in want.items())
            assert ("POST", "/cgi-bin/hanservice.cgi", "showMeterValues") in gw.requests
            assert fw.proc.poll() is None
        finally:
            fw.stop()


@pytest.mark.parametrize("family", ["ppc", "theben"])
def test_chunked_answers_and_closed_connections(tmp_path, family):
    """Answers in chunks (with extensions and a trailer), and a gateway that closes the
    connection after each answer: the dongle reads the same values, reconnecting as it must."""
    with Gateway(tmp_path, family) as gw, Broker(tmp_path) as broker, \
            Subscriber(broker.port) as sub:
        gw.chunked = gw.close_each = True
        fw = Firmware(tmp_path, settings(gw), broker.port).start()
        try:
            first = expected(family, T0)
            wait(sub, fw, lambda: all(states(sub, meter) for meter in first), what="states")
            for meter, registers in first.items():
                assert states(sub, meter)[0]["values"] == dict(
                    (obis, {"value": Decimal(value), "unit": unit})
                    for obis, (value, unit) in registers.items())
            said(fw, "pinned its certificate")   # once: each reconnection is checked, not re-pinned
            assert sum("pinned its certificate" in line for line in fw.lines) == 1
        finally:
            fw.stop()


def test_a_wrong_password_is_named_and_the_guard_holds_across_a_restart(tmp_path):
    with Gateway(tmp_path, "emh") as gw, Broker(tmp_path) as broker, \
            Subscriber(broker.port) as sub:
        config = settings(gw, password="wrong", max_logins_per_hour=2)
        fw = Firmware(tmp_path, config, broker.port).start()
        try:
            line = said(fw, "refused user 'han-user' (HTTP 401")
            assert "wrong user name or password" in line and "next try in" in line
            wait(sub, fw, lambda: any(decoded(p)["gateway_error"] == "auth" for p in
                                      sub.on("smartmeter/smgw/diagnostics")), what="diagnostics")
            said(fw, "lockout guard: 2 logins to 127.0.0.1:%d in the last hour" % gw.port, 90)
            assert len(gw.logins) == 2
            wait(sub, fw, lambda: _dongle_diagnostics(sub), what="the dongle's diagnostics")
            assert fw.proc.poll() is None          # still running
            assert not sub.on("smartmeter/%s/state" % METER["emh"])
        finally:
            fw.stop()
        fw = Firmware(tmp_path, config, broker.port).start()   # the budget is on flash
        try:
            said(fw, "lockout guard: 2 logins")
            assert len(gw.logins) == 2
        finally:
            fw.stop()


def test_a_changed_certificate_is_refused_before_any_credential(tmp_path):
    with Gateway(tmp_path, "ppc") as gw, Broker(tmp_path) as broker, \
            Subscriber(broker.port) as sub:
        fw = Firmware(tmp_path, settings(gw), broker.port).start()
        try:
            line = said(fw, "pinned its certificate, SHA-256 " + gw.fingerprint)
            wait(sub, fw, lambda: states(sub, METER["ppc"]), what="a state")
            old, logins = gw.fingerprint, len(gw.logins)
            gw.new_certificate()
            hits = gw.hits
            line = said(fw, "the certificate of 127.0.0.1:%d changed" % gw.port)
            assert "pinned SHA-256 %s, now %s" % (old, gw.fingerprint) in line
            assert "No credentials were sent" in line and "smgw.pin" in line
            assert len(gw.logins) == logins and gw.hits == hits   # no request reached its owner
            wait(sub, fw, lambda: sub.on("smartmeter/smgw/status")[-1:] == [b"offline"],
                 what="the gateway offline")
            assert sub.on("smartmeter/%s/status" % METER["ppc"])[-1] == b"offline"
            assert fw.proc.poll() is None
        finally:
            fw.stop()
        new = settings(gw, pin=gw.fingerprint)     # the user checks it and pins the new one
        fw = Firmware(tmp_path, new, broker.port).start()
        try:
            gw.advance()
            wait(sub, fw, lambda: any(s["timestamp"] == T0 + STEP_S
                                      for s in states(sub, METER["ppc"])), what="a new state")
        finally:
            fw.stop()


@pytest.mark.parametrize("family,mode,message", [
    ("emh", "error500", "answered HTTP 500 to the meter list"),
    ("theben", "hang", "within 5 s (a Theben Conexa stays silent when the user name or password"),
    ("ppc", "malformed", "not a number: '12,3,4'"),
    ("theben", "malformed", "the smgw-info answer of 127.0.0.1:%d is not JSON"),
    ("ppc", "second_session", "another session is probably open"),
])
def test_a_misbehaving_gateway_is_named_and_survived(tmp_path, family, mode, message):
    with Gateway(tmp_path, family) as gw, Broker(tmp_path) as broker, \
            Subscriber(broker.port) as sub:
        fw = Firmware(tmp_path, settings(gw), broker.port).start()
        try:
            wait(sub, fw, lambda: states(sub, METER[family]), what="a state")
            gw.mode = mode
            line = said(fw, message.replace("%d", str(gw.port)), 90)
            assert "next try in" in line
            wait(sub, fw, lambda: decoded(sub.on("smartmeter/smgw/diagnostics")[-1])[
                "polls_failed"] >= 1, what="the failure in the diagnostics")
            gw.mode = "ok"
            gw.session = None   # (a browser that held the PPC session logs out)
            gw.advance()
            wait(sub, fw, lambda: any(s["timestamp"] == T0 + STEP_S
                                      for s in states(sub, METER[family])), 90, "a new state")
        finally:
            fw.stop()


def test_the_config_refuses_what_the_dongle_cannot_do():
    import sys
    from conftest import CORE
    sys.path.insert(0, str(CORE))
    from dongle import config
    _, errors = config.validate({"meter": {"profile": "smgw"}, "smgw": {"host": "192.168.1.200",
                                                                        "pin": "00:11"}})
    _, auto = config.validate({"meter": {"profile": "smgw"}, "smgw": {"family": "auto"}})
    assert "smgw.family: must be ppc, theben or emh (a gateway is not probed on the dongle: " \
           "auto is the host's)" in auto
    assert "smgw.pin: must be empty (pin the first certificate seen) or the SHA-256 " \
           "fingerprint: 64 hex digits, e.g. AB:CD:…" in errors
    assert any(e.startswith("smgw.family: the smgw profile needs it") for e in errors)
    assert any(e.startswith("smgw.user: the smgw profile needs it") for e in errors)
    good, errors = config.validate({"meter": {"profile": "smgw"}, "smgw": {
        "family": "ppc", "host": "192.168.1.200", "user": "u", "pin": "AB:" * 31 + "CD"}})
    assert errors == [] and good["smgw"]["pin"] == "ab" * 31 + "cd"
    assert good["smgw"]["interval_s"] == 300 and good["smgw"]["max_logins_per_hour"] == 12


def _node(sub):
    for topic in sub.topics():
        if topic.endswith("_smgw/firmware/config"):
            return topic.split("/")[2][:-len("_smgw")]
    return "none"


def _dongle_diagnostics(sub):
    for topic in sub.topics():
        if topic.endswith("/diagnostics") and topic != "smartmeter/smgw/diagnostics":
            return decoded(sub.on(topic)[-1]).get("polls_failed", 0) >= 1
    return False
