"""The decode contract's JSON lines: one per Reading (`Reading.to_json()`) or rejected frame.

Written by hand, not with a json module, so that CPython and MicroPython print byte-identical
output (MicroPython dicts are unordered and its json escapes differently) and so that Exact numbers
print as the meter stated them. Apart from reading.py because the dongle publishes its own
payloads (dongle.topics) and never loads this.
"""
from .harmonize import GAS_AT, is_gas, value_entry
from .reading import add_entry, is_plain, json_string, json_value, value_fields

# (obis, Value) -> its parts: ('"obis": {…}', its place in the harmonized order, '"name": value').
# Decoders share the pairs of repeating lines and registers, so most values of a telegram were
# written before. The place: -1 for no harmonized name, (GAS_AT, channel) for gas, else the name's
# position.
_PARTS = {}
MAX_PARTS = 512
# The places of a reading's values, in stream order -> (the indexes of the harmonized values in
# output order, (index, channel) of each gas value): a meter sends the same layout every time.
_LAYOUTS = {}
MAX_LAYOUTS = 16


def reading_json(reading, harmonized=None):
    values = reading.values
    parts = list(map(_PARTS.get, values))
    if None in parts:
        _add_parts(values, parts)
    texts, places, names = zip(*parts) if parts else ((), (), ())
    out = ['{"meter_id": ', json_value(reading.meter_id), ', "timestamp": ',
           json_value(reading.timestamp), ', "authenticated": ', json_value(reading.authenticated),
           ', "values": {', ", ".join(texts), '}, "harmonized": {']
    if harmonized is None:
        electric, gas = _LAYOUTS.get(places) or _layout(places)
        chosen = [names[at] for at in electric]
        for at, channel in gas:   # a gas value counts when its channel is a gas meter's
            if is_gas(reading, channel):
                chosen.append(names[at])
                break
        out.append(", ".join(chosen))
    else:
        out.append(", ".join([json_string(k) + ": " + json_value(v) for k, v in harmonized]))
    out.append("}")
    if reading.warnings:
        out.append(', "warnings": [' + ", ".join([json_string(w) for w in reading.warnings]) + "]")
    out.append("}")
    return "".join(out)


def _add_parts(values, parts):
    """Write the parts of the values not seen before (the Nones in parts) into parts and _PARTS."""
    for at in range(len(parts)):
        if parts[at] is None:
            obis, value = values[at]
            if value.timestamp is None and is_plain(obis):   # most values
                text = '"%s": {%s}' % (obis, value_fields(value))
            else:
                pieces = []
                add_entry(pieces, obis, value)
                text = "".join(pieces)
            found = value_entry(obis, value, True)
            if found is None:
                place, name = -1, None
            else:
                place, name = found[0], found[5]
                if place == GAS_AT:
                    place = (GAS_AT, found[3])
            if len(_PARTS) >= MAX_PARTS:   # bounded: changing values can't grow it
                _PARTS.clear()
            parts[at] = _PARTS[values[at]] = (text, place, name)


def _layout(places):
    """_LAYOUTS's entry for places: a name's first value counts, in the order of the names."""
    first = {}
    gas = []
    for at, place in enumerate(places):
        if type(place) is tuple:
            gas.append((at, place[1]))
        elif place >= 0 and place not in first:
            first[place] = at
    if len(_LAYOUTS) >= MAX_LAYOUTS:   # bounded: noise can't grow it
        _LAYOUTS.clear()
    layout = _LAYOUTS[places] = ([first[place] for place in sorted(first)], gas)
    return layout


def error_json(error):
    """The contract's line for a rejected frame."""
    return '{"error": {"kind": %s, "message": %s}}' % (json_string(error.kind), json_string(error.message))
