"""The decode contract's JSON lines: one per Reading (`Reading.to_json()`) or rejected frame.

Written by hand, not with a json module, so that CPython and MicroPython print byte-identical
output (MicroPython dicts are unordered and its json escapes differently) and so that Exact numbers
print as the meter stated them. Apart from reading.py because the dongle publishes its own
payloads (dongle.topics) and never loads this.
"""
from .harmonize import harmonize
from .reading import json_string, json_value


def reading_json(reading, harmonized=None):
    if harmonized is None:
        harmonized = harmonize(reading)
    parts = [
        '"meter_id": ' + json_value(reading.meter_id),
        '"timestamp": ' + json_value(reading.timestamp),
        '"authenticated": ' + json_value(reading.authenticated),
        '"values": {' + ", ".join(_value_json(k, v) for k, v in reading.values) + "}",
        '"harmonized": {' + ", ".join(
            json_string(k) + ": " + json_value(v) for k, v in harmonized) + "}",
    ]
    if reading.warnings:
        parts.append('"warnings": [' + ", ".join(json_string(w) for w in reading.warnings) + "]")
    return "{" + ", ".join(parts) + "}"


def _value_json(obis, v):
    text = json_string(obis) + ': {"value": ' + json_value(v.value) + ', "unit": ' + json_string(v.unit)
    if v.timestamp is not None:
        text += ', "timestamp": ' + json_string(v.timestamp)
    return text + "}"


def error_json(error):
    """The contract's line for a rejected frame."""
    return '{"error": {"kind": %s, "message": %s}}' % (json_string(error.kind), json_string(error.message))
