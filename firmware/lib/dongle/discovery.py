"""Home Assistant MQTT discovery configs for a meter (publish them retained).

    meter = about(reading)      # a plain call: the Reading can go before the publishing awaits
    for topic, payload in configs(meter, base, prefix, node, version): publish(...)

One HA device per meter; one sensor per harmonized value, state from the harmonized topics; plus
diagnostic sensors reading <base>/<id>/diagnostics. A generator: the dongle holds one config at
a time, and loads this module only while it announces (its tables cost heap; the publisher
unloads it afterwards). The tables are text: short names in code would be interned, and interned
names stay on the heap after the module has left.
"""
from meterkit.harmonize import QUANTITY, harmonize
from meterkit.reading import json_string

from .topics import availability, device_id, diagnostics, ha_key, meter_name

# Home Assistant sensor settings per harmonized quantity (its name is the device_class):
# state_class, unit. total_increasing + kWh / m³ is what the energy dashboard accepts.
_HA = ("|power=measurement W|energy=total_increasing kWh|voltage=measurement V"
       "|current=measurement A|gas=total_increasing m\u00b3|")

# Dongle health sensors: stats key, label, device_class, state_class, unit ("" where none).
_DIAGNOSTICS = ("frames_ok,Frames OK,,total_increasing,\n"
                "frames_errors,Frame errors,,total_increasing,\n"
                "heap_free,Free heap,data_size,measurement,B\n"
                "rssi,Wi-Fi signal,signal_strength,measurement,dBm\n"
                "uptime_s,Uptime,duration,total_increasing,s")

_MODELS = ("|p1=DSMR P1 meter|sht=DSMR meter, encrypted P1 (Smarty)|hdlc=DLMS/COSEM meter (HDLC)"
           "|mbus=DLMS/COSEM meter (M-Bus)|apdu=DLMS/COSEM meter"
           "|smgw=meter behind a Smart Meter Gateway|")

_SETTINGS = ("device_class", "state_class", "unit_of_measurement", "entity_category")


def about(reading):
    """What the configs need of a Reading: (meter id in topics, HA key, meter name, source,
    harmonized names)."""
    return (device_id(reading), ha_key(reading), meter_name(reading), reading.source,
            [name for name, _ in harmonize(reading)])


def configs(meter, base, prefix="homeassistant", node="meterkit", version=None):
    """Yield (topic, payload) for each sensor of meter (about(reading)), the harmonized ones
    first. Topics the sensors read and the device's name carry the meter's name (so do the
    entity ids HA makes of it); the config topics, unique_ids and the device's identifier carry
    its HA key, which stays what it was before ids were read as ASCII."""
    meter, known_as, meter_id, source, names = meter
    object_id = node + "_" + known_as
    # the same in every config: where availability is told, the device the sensor belongs to
    shared = (', "availability_topic": ' + json_string(availability(base, meter)[0]),
              ', "device": %s}' % _device(source, meter_id, object_id, version))
    for name in names:
        quantity = QUANTITY[name]
        entry = _entry(_HA, quantity)
        if entry is None:
            raise KeyError(quantity)
        settings = [quantity] + entry.split(" ") + [""]
        state = "%s/%s/%s/%s" % (base, meter, quantity, name)
        yield _sensor(prefix, object_id, name, _label(name), state, "value", settings, shared)
    state = diagnostics({}, base, meter)[0]
    for line in _DIAGNOSTICS.split("\n"):
        key, label, settings = line.split(",", 2)
        settings = settings.split(",") + ["diagnostic"]
        yield _sensor(prefix, object_id, key, label, state, key, settings, shared)


def _sensor(prefix, object_id, name, label, state, field, settings, shared):
    """settings: device_class, state_class, unit, entity_category; "" where none."""
    parts = ['{"name": %s, "unique_id": %s, "state_topic": %s, "value_template": %s%s' % (
        json_string(label), json_string(object_id + "_" + name), json_string(state),
        json_string("{{ value_json.%s }}" % field), shared[0])]
    for key, text in zip(_SETTINGS, settings):
        if text:
            parts.append(', "%s": %s' % (key, json_string(text)))
    parts.append(shared[1])   # joined once: no growing copies of a 500-byte payload
    return "%s/sensor/%s/%s/config" % (prefix, object_id, name), "".join(parts).encode()


def _device(source, meter_id, object_id, version):
    if version is None:
        from meterkit import VERSION as version
    model = _entry(_MODELS, source) or "smart meter"
    name = "Smart meter %s" % (meter_id or "")
    return ('{"identifiers": [%s], "name": %s, "manufacturer": "meterkit", "model": %s, '
            '"sw_version": %s}' % (json_string(object_id), json_string(name.strip()),
                                   json_string(model), json_string(version)))


def _entry(table, key):
    """The text after '|key=' in a '|key=text|...|' table, or None."""
    at = table.find("|%s=" % key)
    if at < 0:
        return None
    at += len(key) + 2
    return table[at:table.index("|", at)]


def _label(name):
    """'energy_in_t1' -> 'Energy in T1'."""
    words = name.split("_")
    words[0] = words[0][:1].upper() + words[0][1:]
    for i in range(1, len(words)):
        word = words[i]
        if len(word) == 2 and word[0] in "lt" and word[1].isdigit():
            words[i] = word.upper()
    return " ".join(words)
