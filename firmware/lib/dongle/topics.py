"""MQTT topics and payloads for a Reading: harmonized, raw, smartmeter-datacollector and Home
Assistant discovery layouts. Pure functions, no I/O: the dongle and the host publish the same bytes.

Payloads are JSON written by hand (reading.json_string/json_value) so keys keep their order, meter
values print exactly as Exact numbers, and MicroPython and CPython give identical bytes.
Timestamps are epoch seconds: the meter's clock when it states one, else the receive time passed
in (`received`), else null. A naive meter time (no UTC offset) is taken as UTC.
"""
from meterkit.clock import epoch_seconds
from meterkit.harmonize import QUANTITY, harmonize
from meterkit.reading import json_string, json_value

MAX_ID = 64

# smartmeter-datacollector data-point names (smartmeter/meter_data.py and the OBIS table in
# smartmeter/cosem.py of scs/smartmeter-datacollector), by the (C, D, E) groups of an
# electricity code; B (the channel) is ignored as L+G meters state energies on 1-1:.
_DATACOLLECTOR = (
    ((1, 7, 0), "ACTIVE_POWER_P"), ((2, 7, 0), "ACTIVE_POWER_N"),
    ((3, 7, 0), "REACTIVE_POWER_P"), ((4, 7, 0), "REACTIVE_POWER_N"),
    ((13, 7, 0), "POWER_FACTOR"), ((14, 7, 0), "NET_FREQUENCY"),
    ((21, 7, 0), "ACTIVE_POWER_P_L1"), ((22, 7, 0), "ACTIVE_POWER_N_L1"),
    ((23, 7, 0), "REACTIVE_POWER_P_L1"), ((24, 7, 0), "REACTIVE_POWER_N_L1"),
    ((31, 7, 0), "CURRENT_L1"), ((32, 7, 0), "VOLTAGE_L1"),
    ((41, 7, 0), "ACTIVE_POWER_P_L2"), ((42, 7, 0), "ACTIVE_POWER_N_L2"),
    ((43, 7, 0), "REACTIVE_POWER_P_L2"), ((44, 7, 0), "REACTIVE_POWER_N_L2"),
    ((51, 7, 0), "CURRENT_L2"), ((52, 7, 0), "VOLTAGE_L2"),
    ((61, 7, 0), "ACTIVE_POWER_P_L3"), ((62, 7, 0), "ACTIVE_POWER_N_L3"),
    ((63, 7, 0), "REACTIVE_POWER_P_L3"), ((64, 7, 0), "REACTIVE_POWER_N_L3"),
    ((71, 7, 0), "CURRENT_L3"), ((72, 7, 0), "VOLTAGE_L3"),
    ((81, 7, 40), "ANGLE_UI_L1"), ((81, 7, 51), "ANGLE_UI_L2"), ((81, 7, 62), "ANGLE_UI_L3"),
    ((1, 8, 0), "ACTIVE_ENERGY_P"), ((1, 8, 1), "ACTIVE_ENERGY_P_T1"),
    ((1, 8, 2), "ACTIVE_ENERGY_P_T2"), ((2, 8, 0), "ACTIVE_ENERGY_N"),
    ((2, 8, 1), "ACTIVE_ENERGY_N_T1"), ((2, 8, 2), "ACTIVE_ENERGY_N_T2"),
    ((3, 8, 0), "REACTIVE_ENERGY_P"), ((3, 8, 1), "REACTIVE_ENERGY_P_T1"),
    ((3, 8, 2), "REACTIVE_ENERGY_P_T2"), ((4, 8, 0), "REACTIVE_ENERGY_N"),
    ((4, 8, 1), "REACTIVE_ENERGY_N_T1"), ((4, 8, 2), "REACTIVE_ENERGY_N_T2"),
    ((5, 8, 0), "REACTIVE_ENERGY_Q1"), ((6, 8, 0), "REACTIVE_ENERGY_Q2"),
    ((7, 8, 0), "REACTIVE_ENERGY_Q3"), ((8, 8, 0), "REACTIVE_ENERGY_Q4"),
)

# Home Assistant sensor settings per harmonized quantity: device_class, state_class, unit.
# total_increasing + kWh / m³ is what the energy dashboard accepts.
_HA = {
    "power": ("power", "measurement", "W"),
    "energy": ("energy", "total_increasing", "kWh"),
    "voltage": ("voltage", "measurement", "V"),
    "current": ("current", "measurement", "A"),
    "gas": ("gas", "total_increasing", "m\u00b3"),
}

# Dongle health sensors: stats key, label, device_class, state_class, unit.
_DIAGNOSTICS = (
    ("frames_ok", "Frames OK", None, "total_increasing", None),
    ("frames_errors", "Frame errors", None, "total_increasing", None),
    ("heap_free", "Free heap", "data_size", "measurement", "B"),
    ("rssi", "Wi-Fi signal", "signal_strength", "measurement", "dBm"),
    ("uptime_s", "Uptime", "duration", "total_increasing", "s"),
)
_ERROR_COUNTERS = ("frames_crc", "frames_auth", "frames_replay", "frames_format")

_MODELS = (("p1", "DSMR P1 meter"), ("sht", "DSMR meter, encrypted P1 (Smarty)"),
           ("hdlc", "DLMS/COSEM meter (HDLC)"), ("mbus", "DLMS/COSEM meter (M-Bus)"),
           ("apdu", "DLMS/COSEM meter"))


def device_id(reading):
    """The meter id made safe for topics and HA ids: [A-Za-z0-9_-] only; 'meter' when none."""
    text = reading.meter_id if isinstance(reading.meter_id, str) else ""
    safe = "".join(ch if _id_char(ch) else "_" for ch in text[:MAX_ID]).strip("_")
    return safe or "meter"


def _id_char(ch):
    return ("a" <= ch <= "z") or ("A" <= ch <= "Z") or ("0" <= ch <= "9") or ch in "_-"


def harmonized(reading, base="smartmeter", received=None):
    """[(topic, payload)]: <base>/<id>/<quantity>/<name> -> {"timestamp": s, "value": n}."""
    root = "%s/%s/" % (base, device_id(reading))
    stamp = json_value(_timestamp(reading, received))
    return [(root + QUANTITY[name] + "/" + name,
             _payload((("timestamp", stamp), ("value", str(value)))))
            for name, value in harmonize(reading)]


def raw_state(reading, base, received=None):
    """(topic, payload): <base>/<id>/state with every value the meter sent, in frame order."""
    values = ", ".join(json_string(obis) + ": " + _value_object(value)
                       for obis, value in reading.values)
    payload = _payload((("timestamp", json_value(_timestamp(reading, received))),
                       ("meter_id", json_value(reading.meter_id)),
                       ("values", "{" + values + "}")))
    return "%s/%s/state" % (base, device_id(reading)), payload


def _value_object(value):
    pairs = [("value", json_value(value.value)), ("unit", json_string(value.unit))]
    if value.timestamp is not None:
        pairs.append(("timestamp", json_string(value.timestamp)))
    return _object(pairs)


def raw_values(reading, base, received=None):
    """[(topic, payload)] in the smartmeter-datacollector layout: <base>/<id>/<NAME> ->
    {"value", "unit", "timestamp", "obis"}; NAME is that project's data-point name where one
    exists, else the OBIS code with ':' and '.' as '_' (e.g. 0-1_24_2_1)."""
    root = "%s/%s/" % (base, device_id(reading))
    stamp = json_value(_timestamp(reading, received))
    used = []
    out = []
    for obis, value in reading.values:
        name = _datacollector_name(obis)
        if name is None or name in used:
            name = obis.replace(":", "_").replace(".", "_")
        used.append(name)
        out.append((root + name, _payload((("value", json_value(value.value)),
                                          ("unit", json_string(value.unit)),
                                          ("timestamp", stamp),
                                          ("obis", json_string(obis))))))
    return out


def _datacollector_name(obis):
    if not obis.startswith("1-"):
        return None
    groups = obis.partition(":")[2].split(".")
    if len(groups) != 3:
        return None
    try:
        key = (int(groups[0]), int(groups[1]), int(groups[2]))
    except ValueError:
        return None
    for cde, name in _DATACOLLECTOR:
        if cde == key:
            return name
    return None


def availability(base, id):
    """(topic, online payload, offline payload): the last will and the birth message."""
    return "%s/%s/status" % (base, id), b"online", b"offline"


def diagnostics(stats, base, id):
    """(topic, payload): <base>/<id>/diagnostics, the dongle's counters as JSON, keys sorted.

    stats keys: frames_ok/crc/auth/replay/format, last_error, heap_free, uptime_s, rssi, version,
    queued, dropped (any subset, ints/strs/None). frames_errors (their sum) is added when absent.
    """
    stats = dict(stats)
    if "frames_errors" not in stats and any(key in stats for key in _ERROR_COUNTERS):
        stats["frames_errors"] = sum(stats.get(key) or 0 for key in _ERROR_COUNTERS)
    pairs = [(key, json_value(stats[key])) for key in sorted(stats)]
    return "%s/%s/diagnostics" % (base, id), _payload(pairs)


def discovery(reading, base, prefix="homeassistant", node="meterkit", version=None):
    """[(topic, payload)] Home Assistant MQTT discovery configs (publish them retained).

    One HA device per meter; one sensor per harmonized value, state from the harmonized topics;
    plus diagnostic sensors reading <base>/<id>/diagnostics.
    """
    meter = device_id(reading)
    object_id = node + "_" + meter
    device = _device(reading, object_id, version)
    status = availability(base, meter)[0]
    out = []
    for name, _ in harmonize(reading):
        quantity = QUANTITY[name]
        state = "%s/%s/%s/%s" % (base, meter, quantity, name)
        out.append(_sensor(prefix, object_id, name, _label(name), state, "value", status,
                           device, _HA[quantity], None))
    state = diagnostics({}, base, meter)[0]
    for key, label, device_class, state_class, unit in _DIAGNOSTICS:
        out.append(_sensor(prefix, object_id, key, label, state, key, status, device,
                           (device_class, state_class, unit), "diagnostic"))
    return out


def _sensor(prefix, object_id, name, label, state, field, status, device, kind, category):
    device_class, state_class, unit = kind
    pairs = [("name", json_string(label)),
             ("unique_id", json_string(object_id + "_" + name)),
             ("state_topic", json_string(state)),
             ("value_template", json_string("{{ value_json.%s }}" % field)),
             ("availability_topic", json_string(status))]
    for key, text in (("device_class", device_class), ("state_class", state_class),
                      ("unit_of_measurement", unit), ("entity_category", category)):
        if text is not None:
            pairs.append((key, json_string(text)))
    pairs.append(("device", device))
    return "%s/sensor/%s/%s/config" % (prefix, object_id, name), _payload(pairs)


def _device(reading, object_id, version):
    if version is None:
        from meterkit import VERSION as version
    model = "smart meter"
    for source, text in _MODELS:
        if source == reading.source:
            model = text
    name = "Smart meter %s" % (reading.meter_id or "")
    return _object((("identifiers", "[" + json_string(object_id) + "]"),
                    ("name", json_string(name.strip())),
                    ("manufacturer", json_string("meterkit")),
                    ("model", json_string(model)),
                    ("sw_version", json_string(version))))


def _label(name):
    """'energy_in_t1' -> 'Energy in T1'."""
    words = name.split("_")
    words[0] = words[0][:1].upper() + words[0][1:]
    for i in range(1, len(words)):
        word = words[i]
        if len(word) == 2 and word[0] in "lt" and word[1].isdigit():
            words[i] = word.upper()
    return " ".join(words)


def _timestamp(reading, received):
    if reading.timestamp:
        try:
            return epoch_seconds(reading.timestamp)
        except (ValueError, IndexError):
            pass   # not an ISO time: fall back to when we received it
    return received


def _object(pairs):
    """[(key, JSON text)] -> JSON object text, keys in the given order."""
    return "{" + ", ".join(json_string(k) + ": " + v for k, v in pairs) + "}"


def _payload(pairs):
    return _object(pairs).encode()
