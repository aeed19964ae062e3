"""Home Assistant discovery for a Smart Meter Gateway itself (the dongle's profile smgw and the
host's `meterkit smgw`): its own device (manufacturer, model, firmware as sw_version) with sensors
for its clock and firmware (from its state topic) and its polling health (from its diagnostics
topic). The meters behind it are announced as every meter is (discovery.py): one device per
meter. A generator, loaded only while it announces, like discovery.py."""
from meterkit.reading import json_string
from meterkit.smgw.values import FAMILY_OBIS, FIRMWARE_OBIS

from .topics import availability, device_id, diagnostics, raw_state

# key, label, topic ("state" or "diagnostics"), value template, device_class, state_class, unit
_SENSORS = (
    ("time", "Gateway time", "state",
     "{{ value_json.timestamp | int | timestamp_custom('%Y-%m-%dT%H:%M:%S+00:00', false) }}",
     "timestamp", "", ""),
    ("firmware", "Firmware", "state", "{{ value_json['values']['%s'].value }}" % FIRMWARE_OBIS,
     "", "", ""),
    ("meters", "Meters", "diagnostics", "{{ value_json.meters }}", "", "measurement", ""),
    ("polls_failed", "Failed polls", "diagnostics", "{{ value_json.polls_failed }}", "",
     "total_increasing", ""),
    ("logins_last_hour", "Logins in the last hour", "diagnostics",
     "{{ value_json.logins_last_hour }}", "", "measurement", ""),
    ("last_error", "Last error", "diagnostics", "{{ value_json.last_error }}", "", "", ""),
    ("uptime_s", "Uptime", "diagnostics", "{{ value_json.uptime_s }}", "duration",
     "total_increasing", "s"),
)


def gateway_configs(reading, base, prefix="homeassistant", node="meterkit"):
    """[(topic, payload)] for a gateway's reading (source smgw_gateway), publish retained."""
    return list(iter_configs(reading, base, prefix, node))


def iter_configs(reading, base, prefix="homeassistant", node="meterkit"):
    from meterkit.smgw import FAMILIES, load
    gateway = device_id(reading)
    object_id = node + "_" + gateway
    name = _text(reading, FAMILY_OBIS)
    family = load(name) if name in FAMILIES else None
    device = ('{"identifiers": [%s], "name": %s, "manufacturer": %s, "model": %s, '
              '"sw_version": %s}' % (
                  json_string(object_id), json_string("Smart Meter Gateway " + gateway),
                  json_string(family.manufacturer if family else "unknown"),
                  json_string(family.model if family else "Smart Meter Gateway"),
                  json_string(_text(reading, FIRMWARE_OBIS) or "unknown")))
    topics = {"state": raw_state(reading, base)[0],
              "diagnostics": diagnostics({}, base, gateway)[0]}
    for key, label, topic, template, device_class, state_class, unit in _SENSORS:
        parts = ['{"name": %s, "unique_id": %s, "state_topic": %s, "value_template": %s, '
                 '"availability_topic": %s' % (
                     json_string(label), json_string(object_id + "_" + key),
                     json_string(topics[topic]), json_string(template),
                     json_string(availability(base, gateway)[0]))]
        for name, value in (("device_class", device_class), ("state_class", state_class),
                            ("unit_of_measurement", unit)):
            if value:
                parts.append(', "%s": %s' % (name, json_string(value)))
        if topic == "diagnostics" or key == "firmware":
            parts.append(', "entity_category": "diagnostic"')
        parts.append(', "device": %s}' % device)
        yield "%s/sensor/%s/%s/config" % (prefix, object_id, key), "".join(parts).encode()


def _text(reading, code):
    value = reading.get(code)
    return value.value if value is not None and isinstance(value.value, str) else None
