"""Home Assistant MQTT discovery configs for a Reading (publish them retained).

    for topic, payload in configs(reading, base, prefix, node, version): publish(...)

One HA device per meter; one sensor per harmonized value, state from the harmonized topics; plus
diagnostic sensors reading <base>/<id>/diagnostics. A generator: the dongle holds one config at
a time, and loads this module only while it announces (its tables cost heap; the publisher unloads it afterwards).
"""
from meterkit.harmonize import QUANTITY, harmonize
from meterkit.reading import json_string

from .topics import _object, _payload, availability, device_id, diagnostics

# Home Assistant sensor settings per harmonized quantity: device_class, state_class, unit.
# total_increasing + kWh / m³ is what the energy dashboard accepts.
_HA = (
    ("power", "measurement", "W"),
    ("energy", "total_increasing", "kWh"),
    ("voltage", "measurement", "V"),
    ("current", "measurement", "A"),
    ("gas", "total_increasing", "m\u00b3"),
)

# Dongle health sensors: stats key, label, device_class, state_class, unit.
_DIAGNOSTICS = (
    ("frames_ok", "Frames OK", None, "total_increasing", None),
    ("frames_errors", "Frame errors", None, "total_increasing", None),
    ("heap_free", "Free heap", "data_size", "measurement", "B"),
    ("rssi", "Wi-Fi signal", "signal_strength", "measurement", "dBm"),
    ("uptime_s", "Uptime", "duration", "total_increasing", "s"),
)

_MODELS = (("p1", "DSMR P1 meter"), ("sht", "DSMR meter, encrypted P1 (Smarty)"),
           ("hdlc", "DLMS/COSEM meter (HDLC)"), ("mbus", "DLMS/COSEM meter (M-Bus)"),
           ("apdu", "DLMS/COSEM meter"))


def configs(reading, base, prefix="homeassistant", node="meterkit", version=None):
    """Yield (topic, payload) for each sensor, the harmonized ones first."""
    meter = device_id(reading)
    object_id = node + "_" + meter
    device = _device(reading, object_id, version)
    status = availability(base, meter)[0]
    for name, _ in harmonize(reading):
        quantity = QUANTITY[name]
        state = "%s/%s/%s/%s" % (base, meter, quantity, name)
        yield _sensor(prefix, object_id, name, _label(name), state, "value", status,
                      device, _kind(quantity), None)
    state = diagnostics({}, base, meter)[0]
    for key, label, device_class, state_class, unit in _DIAGNOSTICS:
        yield _sensor(prefix, object_id, key, label, state, key, status, device,
                      (device_class, state_class, unit), "diagnostic")


def _kind(quantity):
    for kind in _HA:
        if kind[0] == quantity:
            return kind
    raise KeyError(quantity)


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
