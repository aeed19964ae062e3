"""The firmware end to end on the MicroPython unix port: simulated meter over TCP -> firmware ->
real mosquitto -> an independent subscriber (mosquitto_sub). Values are compared with what the
simulator says it sent."""
import json
from decimal import Decimal

import pytest

from broker import Broker
from conftest import runtime_options
from firmware_harness import FIRMWARE_PROFILE, PERSISTENT, Firmware, Meter, MeterLine, Subscriber
from meterkit.clock import epoch_seconds
from meterkit.harmonize import QUANTITY, harmonize
from meterkit.reading import Reading

KEY = "000102030405060708090A0B0C0D0E0F"
AUTH_KEY = "D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF"
METERS = {   # simulator profile -> (key, auth key) it is built with
    "dsmr5": (None, None), "smarty": (KEY, None), "e450": (KEY, AUTH_KEY), "evn": (KEY, None)}


def config(profile, **publish):
    key, auth_key = METERS[profile]
    return {"meter": {"profile": FIRMWARE_PROFILE[profile], "key": key or "",
                      "auth_key": auth_key or ""},
            "publish": dict({"diagnostics_interval": 1}, **publish)}


def number(payload):
    return json.loads(payload, parse_float=Decimal, parse_int=Decimal)


def expected_reading(expected):
    reading = Reading()
    for obis, value in expected.items():
        if obis != "timestamp":
            reading.add(obis, value[0], value[1])
    return reading


def state_docs(sub, base="smartmeter"):
    return [number(p) for t, p, _ in sub.messages if t.startswith(base + "/") and t.endswith("/state")]


# each meter on the wheel (app from firmware/lib) and frozen into the 64- and 32-bit builds
@pytest.mark.parametrize("runtime", ["wheel", "unix64-frozen", "unix32-frozen"])
@pytest.mark.parametrize("profile", sorted(METERS))
def test_simulated_meter_to_mosquitto(tmp_path, profile, runtime):
    key, auth_key = METERS[profile]
    line = MeterLine(Meter(profile, key, auth_key, seed=3), count=8, interval=0.05)
    with Broker(tmp_path) as broker, Subscriber(broker.port) as sub:
        stats = Firmware(tmp_path, config(profile), broker.port, line.port,
                         **runtime_options(runtime)).start().wait()
        # the clean stop's "offline" is the last thing the dongle says: wait for it to get here
        assert sub.wait_until(lambda: sub.on(diagnostics_topic(sub)) and
                              sub.on("smartmeter/%s/status" % topic_id(sub))[-1:] == [b"offline"], 10)
    assert stats["frames_ok"] == stats["readings"] == stats["published"] == 8
    docs = state_docs(sub)
    assert len(docs) == 8
    for doc, expected in zip(docs, line.expected):
        assert doc["timestamp"] == epoch_seconds(expected["timestamp"])
        for obis, stated in expected.items():
            if obis != "timestamp":
                assert str(doc["values"][obis]["value"]) == str(stated[0]), obis
                assert doc["values"][obis]["unit"] == stated[1]
    meter = docs[0]["meter_id"]
    device = topic_id(sub)
    # harmonized: the simulator's values converted to W / kWh / V / A, with the meter's time
    last = line.expected[-1]
    for name, value in harmonize(expected_reading(last)):
        quantity = QUANTITY[name]
        payload = number(sub.on("smartmeter/%s/%s/%s" % (device, quantity, name))[-1])
        assert payload["value"] == Decimal(str(value)), name
        assert payload["timestamp"] == epoch_seconds(last["timestamp"])
    # Home Assistant discovery, retained, one device per meter, energy in the energy dashboard
    configs = [(t, number(p)) for t, p, _ in sub.messages if t.startswith("homeassistant/")]
    energy = [c for t, c in configs if c.get("device_class") == "energy"]
    assert energy and all(c["state_class"] == "total_increasing" and
                          c["unit_of_measurement"] == "kWh" for c in energy)
    assert len(set(json.dumps(c["device"]["identifiers"]) for _, c in configs)) == 1
    assert meter is not None
    # datacollector per-value topics and the diagnostics document
    assert number(sub.on("smartmeter/%s/ACTIVE_POWER_P" % device)[-1])["obis"] == "1-0:1.7.0"
    diag = number(sub.on(diagnostics_topic(sub))[-1])
    assert diag["frames_ok"] == 8 and diag["frames_errors"] == 0
    assert diag["version"] and diag["heap_free"] > 0 and diag["dropped"] == 0
    assert sub.on("smartmeter/%s/status" % device)[-1] == b"offline"   # clean stop at the end


def topic_id(sub):
    return [t.split("/")[1] for t in sub.topics() if t.endswith("/state")][0]


def diagnostics_topic(sub):
    found = [t for t in sub.topics() if t.endswith("/state")]
    return "smartmeter/%s/diagnostics" % found[0].split("/")[1] if found else "-"


@pytest.mark.parametrize("runtime", ["wheel", "unix64-frozen"])
def test_broker_outage_loses_nothing(tmp_path, runtime):
    """Stop mosquitto for a stretch of telegrams, restart it on the same port: every reading
    arrives, in order, with its original timestamp (the one in flight at the stop may come
    twice: QoS 1)."""
    count = 80
    line = MeterLine(Meter("dsmr5", seed=5), count=count, interval=0.05)
    broker = Broker(tmp_path, extra_conf=PERSISTENT % tmp_path).start()
    try:
        with Subscriber(broker.port, persistent=True, topic="smartmeter/+/state") as sub:
            fw = Firmware(tmp_path, config("dsmr5"), broker.port, line.port,
                          **runtime_options(runtime)).start()
            assert sub.wait_until(lambda: len(sub.messages) >= 10, 30)
            broker.stop()
            seen_before = len(sub.messages)
            assert sub.wait_until(lambda: line.sent.is_set() or False, 0) is False
            import time
            time.sleep(1.5)               # ~30 telegrams while the broker is away
            broker.start()
            stats = fw.wait(120)
            assert sub.wait_until(lambda: len(sub.messages) >= count, 30), len(sub.messages)
    finally:
        broker.stop()
    assert seen_before < count
    stamps = [number(p)["timestamp"] for _, p, _ in sub.messages]
    # QoS 1 is at least once: a message the broker passed on just as it stopped, before its
    # PUBACK got back to the dongle (or the subscriber's to the broker), goes again after the
    # restart. That one message, right after itself, is the only repeat allowed.
    repeats = [i for i in range(1, len(stamps)) if stamps[i] == stamps[i - 1]]
    assert len(repeats) <= 1, repeats
    stamps = [stamp for i, stamp in enumerate(stamps) if i not in repeats]
    assert stamps == [epoch_seconds(e["timestamp"]) for e in line.expected]   # in order, all
    assert stats["mqtt_connects"] >= 3 and stats["dropped"] == 0
    assert stats["readings"] == stats["published"] == count


def test_noisy_line_is_counted_and_survived(tmp_path):
    line = MeterLine(Meter("dsmr5", seed=9), count=60, interval=0.02, garbage=0.3)
    with Broker(tmp_path) as broker, Subscriber(broker.port) as sub:
        stats = Firmware(tmp_path, config("dsmr5"), broker.port, line.port).start().wait()
        assert sub.wait_until(lambda: sub.on(diagnostics_topic(sub)), 10)
    assert line.corrupted > 5
    assert stats["frames_ok"] == len(line.expected) == 60 - line.corrupted
    assert stats["frames_crc"] + stats["frames_format"] == line.corrupted
    assert stats["skipped_bytes"] > 0 and stats["last_error"]
    assert [d["timestamp"] for d in state_docs(sub)] == \
        [epoch_seconds(e["timestamp"]) for e in line.expected]
    diag = number(sub.on(diagnostics_topic(sub))[-1])
    assert diag["frames_errors"] == line.corrupted and diag["last_error"]


def test_auto_profile_finds_the_meter(tmp_path):
    line = MeterLine(Meter("e450", KEY, AUTH_KEY, seed=2), count=4, interval=0.05)
    cfg = config("e450")
    cfg["meter"]["profile"] = "auto"
    with Broker(tmp_path) as broker:
        stats = Firmware(tmp_path, cfg, broker.port, line.port).start().wait()
    assert stats["frames_ok"] == stats["published"] == 4 and stats["line_locked"]
