"""`meterkit bridge`: the Energy Data Hackday 2021's four example payloads (EKZ, Romande Energie,
AEW, EWB) through a real mosquitto, the dongle's own raw layouts back to exactly the dongle's
harmonized messages, mapping files for new devices, and bad input that is skipped, not fatal."""
import decimal
import json
import subprocess
import sys
import threading
import time

import pytest

from broker import Broker, Subscriber
from conftest import load_vectors, vector_bytes
from dongle import topics
from meterkit.errors import FormatError
from meterkit.reading import Reading
from meterkit.stream import StreamDecoder
from meterkit_host import cli, mappings
from meterkit_host.bridge import Bridge

# As the hackday's README shows them: what each meter's adapter published, and what the
# harmonized profile says for it. Tasmota's "Time" is Swiss local time (CEST in September).
HACKDAY = [
    ("smartmeter/LGZ1030655933512/ACTIVE_POWER_P", '{"value": 1, "timestamp": 1629055611}',
     "smartmeter/LGZ1030655933512/power/power_in", '{"timestamp": 1629055611, "value": 1}'),       # EKZ
    ("tele/gPlug11/SENSOR", '{"Time":"2021-09-24T17:56:38","z":{"Pi":0}}',
     "smartmeter/RomandeEnergie/power/power_in", '{"timestamp": 1632498998, "value": 0}'),         # Romande Energie
    ("smartmeter/12345/ACTIVE_POWER_P", '{"value": 42.0, "timestamp": 1632499152}',
     "smartmeter/12345/power/power_in", '{"timestamp": 1632499152, "value": 42.0}'),              # AEW
    ("tele/gPlug10/SENSOR", '{"Time":"2021-09-24T17:03:45","z":{"Pi":12}}',
     "smartmeter/EWB/power/power_in", '{"timestamp": 1632495825, "value": 12}'),                  # EWB
]

CONFIG = {
    "base": "smartmeter",
    "client_id": "bridge-test",
    "devices": [
        {"topic": "tele/+/SENSOR", "mapping": "tasmota-gplug",
         "meter_ids": {"gPlug10": "EWB", "gPlug11": "RomandeEnergie"}},
        {"topic": "smartmeter/+/+", "mapping": "datacollector"},
        {"topic": "smartmeter/+/state", "mapping": "meterkit-state"},
    ],
}


def bridge():
    return Bridge(CONFIG["devices"], CONFIG["base"])


class BridgeProcess:
    def __init__(self, config_path, port):
        argv = [sys.executable, "-m", "meterkit_host.cli", "bridge", "--config", str(config_path),
                "--mqtt", "mqtt://127.0.0.1:%d" % port]
        self.proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
        self.lines = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip())

    def wait_for(self, text, timeout=20):
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            assert time.monotonic() < deadline, "bridge never logged %r:\n%s" % (text, "\n".join(self.lines))
            time.sleep(0.05)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def publish(port, topic, payload):
    subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-t", topic,
                    "-m", payload], check=True, timeout=20)


@pytest.fixture
def running_bridge(tmp_path):
    config = tmp_path / "bridge.json"
    config.write_text(json.dumps(CONFIG))
    with Broker(tmp_path) as broker:
        process = BridgeProcess(config, broker.port)
        try:
            process.wait_for("subscribed")
            yield broker, process
        finally:
            process.stop()


def test_hackday_examples_come_out_harmonized_on_a_real_broker(running_bridge):
    broker, process = running_bridge
    harmonized = Subscriber(broker.port, "smartmeter/+/+/+")
    try:
        for topic, payload, _, _ in HACKDAY:
            publish(broker.port, topic, payload)
        got = sorted(harmonized.next_message() for _ in HACKDAY)
    finally:
        harmonized.close()
    assert got == sorted("%s 0 1 %s" % (topic, payload) for _, _, topic, payload in HACKDAY)


def test_malformed_payloads_are_skipped_and_the_bridge_keeps_running(running_bridge):
    broker, process = running_bridge
    harmonized = Subscriber(broker.port, "smartmeter/+/+/+")
    try:
        publish(broker.port, "tele/gPlug10/SENSOR", "not json")
        publish(broker.port, "tele/gPlug10/SENSOR", '{"Time":"yesterday","z":{"Pi":1}}')
        publish(broker.port, "smartmeter/12345/ACTIVE_POWER_P", '{"value": "lots", "timestamp": 1}')
        publish(broker.port, "tele/gPlug10/LWT", "Online")   # not meter data: ignored quietly
        publish(broker.port, "tele/gPlug10/SENSOR", '{"Time":"2021-09-24T17:03:47","z":{"Pi":13}}')
        assert harmonized.next_message() == 'smartmeter/EWB/power/power_in 0 1 {"timestamp": 1632495827, "value": 13}'
    finally:
        harmonized.close()
    process.wait_for("skipped smartmeter/12345/ACTIVE_POWER_P (3 so far)")
    assert process.proc.poll() is None
    assert not any("LWT" in line for line in process.lines)


# -- the translation itself --------------------------------------------------------------------------

def test_tasmota_message_with_every_field_and_unit_conversion():
    payload = b'{"Time":"2021-01-10T08:00:00","z":{"Pi":1523,"Po":0,"Ei":12345.678,"U1":230.1,' \
              b'"I1":6.620,"P1i":1523,"Unknown":5},"ENERGY":{"Power":3}}'
    out = dict(bridge().handle("tele/gPlug10/SENSOR", payload))
    stamp = 1610262000   # 08:00 CET = 07:00 UTC
    assert out == {
        "smartmeter/EWB/power/power_in": b'{"timestamp": %d, "value": 1523}' % stamp,
        "smartmeter/EWB/power/power_out": b'{"timestamp": %d, "value": 0}' % stamp,
        "smartmeter/EWB/energy/energy_in": b'{"timestamp": %d, "value": 12345.678}' % stamp,
        "smartmeter/EWB/voltage/voltage_l1": b'{"timestamp": %d, "value": 230.1}' % stamp,
        "smartmeter/EWB/current/current_l1": b'{"timestamp": %d, "value": 6.620}' % stamp,
        "smartmeter/EWB/power/power_in_l1": b'{"timestamp": %d, "value": 1523}' % stamp}


def test_values_stay_exact():
    # 17 significant digits: a float would print 12345678901.234568
    out = bridge().handle("smartmeter/x/ACTIVE_ENERGY_P", b'{"value": 12345678901234.567, "timestamp": 5}')
    assert out == [("smartmeter/x/energy/energy_in", b'{"timestamp": 5, "value": 12345678901.234567}')]


def dongle_readings():
    readings = []
    for vector in load_vectors():
        key = bytes.fromhex(vector["key_hex"]) if vector["key_hex"] else None
        ak = bytes.fromhex(vector["auth_key_hex"]) if vector["auth_key_hex"] else None
        decoder = StreamDecoder(key, ak)
        events = decoder.feed(vector_bytes(vector)) + decoder.flush()
        readings += [e for e in events if isinstance(e, Reading) and topics.harmonized(e, "smartmeter", 1)]
    assert len(readings) >= 20
    return readings


@pytest.mark.parametrize("layout", ["raw_state", "raw_values"])
def test_the_dongles_raw_layouts_bridge_to_its_own_harmonized_messages(layout):
    received = 1714521600
    for reading in dongle_readings():
        b = bridge()
        if layout == "raw_state":
            incoming = [topics.raw_state(reading, "smartmeter", received)]
        else:
            incoming = topics.raw_values(reading, "smartmeter", received)
        out = exactly(message for topic, payload in incoming for message in b.handle(topic, payload))
        expected = exactly(topics.harmonized(reading, "smartmeter", received))
        if layout == "raw_values":
            # one value per message: with two M-Bus channels each one's gas comes through, where
            # the dongle picks the first; the state document keeps the dongle's choice
            assert set(expected) <= set(out)
            out = [m for m in out if not m[0].endswith("/gas") or m in expected]
        assert out == expected, reading.meter_id


def exactly(messages):
    """Messages with values as Decimal: 2272138E+1 Wh travels as text '22721380', so the bridged
    kWh prints 22721.380 where the dongle printed 22721.38 - the same number, exactly."""
    parsed = [(topic, json.loads(payload, parse_float=decimal.Decimal)) for topic, payload in messages]
    return sorted((topic, doc["timestamp"], decimal.Decimal(doc["value"])) for topic, doc in parsed)


def test_a_new_device_type_is_a_mapping_file(tmp_path):
    mapping = tmp_path / "my-sml-reader.json"
    mapping.write_text(json.dumps({"format": "tasmota", "section": "SML", "fields": {
        "Total_in": {"obis": "1-0:1.8.0", "unit": "Wh"}, "Power_curr": {"obis": "1-0:16.7.0", "unit": "W"},
        "Power_in": {"obis": "1-0:1.7.0", "unit": "kW"}}}))
    b = Bridge([{"topic": "tele/+/SENSOR", "mapping": str(mapping), "timezone": "UTC"}], "home")
    out = b.handle("tele/keller/SENSOR", b'{"Time":"2024-05-01T00:00:00","SML":{"Total_in":1234567,"Power_in":0.35}}')
    assert out == [("home/keller/power/power_in", b'{"timestamp": 1714521600, "value": 350}'),
                   ("home/keller/energy/energy_in", b'{"timestamp": 1714521600, "value": 1234.567}')]


def test_datacollector_mapping_agrees_with_the_dongles_names():
    table = mappings.load_mapping("datacollector")["fields"]
    for name, field in table.items():
        reading = Reading("m")
        reading.add(field["obis"], mappings.exact(1), field["unit"])
        assert topics.raw_values(reading, "b")[0][0] == "b/m/" + name


@pytest.mark.parametrize("payload", [
    b"", b"[1, 2]", b'{"z": [1]}', b'{"Time": 5, "z": {"Pi": 1}}', b'{"z": {"Pi": "12 W"}}',
    b'{"z": {"Pi": true}}', b'{"z": {"Pi": 1e999999999}}', b'{"z": {"Pi": NaN}}', b"\xff\xfe",
])
def test_bad_tasmota_payloads_are_format_errors(payload):
    b = bridge()
    assert b.handle("tele/gPlug10/SENSOR", payload) == []
    assert b.counts["skipped"] == 1


@pytest.mark.parametrize("payload", [
    b'{"timestamp": 1}', b'{"value": 1, "timestamp": 1e30}', b'{"value": 1, "timestamp": "noon"}',
    b'{"value": {"x": 1}, "timestamp": 1}', b"online",
])
def test_bad_datacollector_payloads_are_format_errors(payload):
    b = bridge()
    assert b.handle("smartmeter/m/ACTIVE_POWER_P", payload) == []
    assert b.counts["skipped"] == 1


def test_topics_that_are_not_values_are_ignored_quietly():
    b = bridge()
    for topic, payload in (("smartmeter/m/status", b"online"), ("smartmeter/m/diagnostics", b'{"frames_ok": 3}'),
                           ("tele/gPlug10/STATE", b'{"Uptime": "1T"}'), ("tele/gPlug10/SENSOR", b'{"ENERGY": {}}')):
        assert b.handle(topic, payload) == []
    assert b.counts["skipped"] == 0 and b.counts["ignored"] == 4


@pytest.mark.parametrize("config, message", [
    ({"devices": [], "bas": "x"}, "config.bas: unknown key"),
    ({"devices": []}, "config.devices: list at least one device"),
    ({"devices": [{"topic": "a/+", "mapping": "datacollector", "id_levle": 1}]}, "config.devices[0].id_levle: unknown key"),
    ({"devices": [{"topic": "a/+"}]}, "config.devices[0].mapping: missing"),
    ({"devices": [{"topic": "a/+", "mapping": "nope"}]}, "no mapping 'nope': give a file or one of datacollector"),
    ({"devices": [{"topic": "a/+", "mapping": "datacollector", "timezone": "Mars/Olympus"}]},
     "config.devices[0].timezone: unknown time zone"),
    ({"devices": [{"topic": "a/+", "mapping": "datacollector", "meter_ids": {"a": 1}}]},
     "config.devices[0].meter_ids.a: must be text"),
    ({"devices": [{"topic": 5, "mapping": "datacollector"}]}, "config.devices[0].topic: must be text"),
])
def test_config_errors_name_the_field(tmp_path, capsys, config, message):
    path = tmp_path / "bridge.json"
    path.write_text(json.dumps(config))
    assert cli.main(["bridge", "--config", str(path)]) == 2
    assert message in capsys.readouterr().err


def test_mapping_file_errors_name_the_field(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"format": "tasmota", "fields": {"Pi": {"obis": "1-0:1.7.0", "unti": "W"}}}))
    with pytest.raises(FormatError, match=r"mapping m.json.fields.Pi.unti: unknown key"):
        mappings.load_mapping(str(path))
    path.write_text(json.dumps({"format": "shelly"}))
    with pytest.raises(FormatError, match=r"mapping m.json.format: must be one of tasmota"):
        mappings.load_mapping(str(path))


def test_state_document_rejects_garbage():
    with pytest.raises(FormatError):
        mappings.reading_from_state({"values": {"1-0:1.7.0": {"value": [1]}}})
    with pytest.raises(FormatError):
        mappings.reading_from_state({"timestamp": "never", "values": {}})
