"""The decode contract's JSON lines: one per Reading (`Reading.to_json()`) or rejected frame.

Written by hand, not with a json module, so that CPython and MicroPython print byte-identical
output (MicroPython dicts are unordered and its json escapes differently) and so that Exact numbers
print as the meter stated them. Apart from reading.py because the dongle publishes its own
payloads (dongle.topics) and never loads this.
"""
from .harmonize import entries
from .reading import add_entry, is_plain, json_string, json_value, value_fields

# (obis, Value) -> its '"obis": {…}' text: decoders share the pairs of repeating lines and
# registers, so most values of a telegram were written before
_TEXTS = {}
MAX_TEXTS = 512


def reading_json(reading, harmonized=None):
    out = ['{"meter_id": ', json_value(reading.meter_id), ', "timestamp": ',
           json_value(reading.timestamp), ', "authenticated": ', json_value(reading.authenticated),
           ', "values": {', ", ".join(_texts(reading.values)), '}, "harmonized": {']
    if harmonized is None:
        out.append(", ".join([entry[5] or '"%s": %s' % (entry[1], entry[2])
                              for entry in entries(reading)]))
    else:
        out.append(", ".join([json_string(k) + ": " + json_value(v) for k, v in harmonized]))
    out.append("}")
    if reading.warnings:
        out.append(', "warnings": [' + ", ".join([json_string(w) for w in reading.warnings]) + "]")
    out.append("}")
    return "".join(out)


def _texts(values):
    """The '"obis": {…}' text of each (obis, Value), from _TEXTS where it was written before."""
    texts = list(map(_TEXTS.get, values))
    if None in texts:
        for at in range(len(texts)):
            if texts[at] is None:
                obis, value = values[at]
                if value.timestamp is None and is_plain(obis):   # most values
                    text = '"%s": {%s}' % (obis, value_fields(value))
                else:
                    pieces = []
                    add_entry(pieces, obis, value)
                    text = "".join(pieces)
                if len(_TEXTS) >= MAX_TEXTS:   # bounded: changing values can't grow it
                    _TEXTS.clear()
                texts[at] = _TEXTS[values[at]] = text
    return texts


def error_json(error):
    """The contract's line for a rejected frame."""
    return '{"error": {"kind": %s, "message": %s}}' % (json_string(error.kind), json_string(error.message))
