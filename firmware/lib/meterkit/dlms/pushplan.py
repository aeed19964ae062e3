"""Push plans (CPython): a meter sends the same layout in every push, only its values change.

After fastpush.read decodes a body of structures `(OBIS, value[, (scaler, unit)])` whose values
are integers, octet or visible strings or null-data, `build` makes a plan of it: a pattern of
the bytes between the values (tags, lengths, OBIS codes, scalers and units: all that decides how
the body is read), a struct format that unpacks the values, and per value what the mapping made
of its code (text, unit, scaler). The next push that matches the pattern is unpacked in one call
straight into the Reading, a value unchanged since the last push keeping its Value. Any other
body is read as before (and planned). The same Reading either way: tests/test_fast_paths.py
proves it on generated bodies, changed bytes included.

Only the host loads this module (apdu.py): the dongle's heap is better spent than on plans.
"""
import re
import struct

from ..reading import Reading, Value
from ..exact import Exact
from . import cosem, pushlists
from .axdr import _INTEGERS, ARRAY, NULL, OCTET_STRING, STRUCTURE, VISIBLE_STRING
from .fastpush import _scaler_unit

UNSIGNED, SIGNED, OCTETS, TEXT, NOTHING = 0, 1, 2, 3, 4   # how a value's bytes are read
MAX_PLANS = 4   # layouts remembered per decoder (one meter sends one or two)


class Plan:
    __slots__ = ("model", "pattern", "unpack", "codes", "steps", "marked", "raws", "values")

    def __init__(self, model, pattern, unpack, codes, steps, marked):
        self.model = model      # the register map it was made under (its scalers are in it)
        self.pattern = pattern  # the layout's bytes (any in the values'): one match per push
        self.unpack = unpack    # (buf, pos) -> the values, integers as ints, others as bytes
        self.codes = codes      # per value: its OBIS text
        self.steps = steps      # per value: (how to read it, scaler, unit)
        self.marked = marked    # (index of a value, is clock, meter-id rank) for cosem.note_ids
        self.raws = (None,) * len(steps)   # the values unpacked the last time, and their Values
        self.values = self.raws


def read(plans, buf, pos, header_time, model):
    """(Reading, end of the body) from the first plan that fits buf[pos:], else None."""
    for plan in plans:
        if plan.model == model:
            match = plan.pattern.match(buf, pos)
            if match is not None:
                return _reading(plan, plan.unpack(buf, pos), header_time), match.end()
    return None


def remember(plans, buf, pos, model):
    """Make a plan of the body at buf[pos:] (just read well by fastpush) if it has the shape."""
    try:
        plan = build(buf, pos, model)
    except (IndexError, KeyError):
        return
    if plan is not None:
        if len(plans) >= MAX_PLANS:
            del plans[0]
        plans.append(plan)


def _reading(plan, raws, header_time):
    values = []
    for raw, last_raw, value, (kind, scaler, unit) in zip(raws, plan.raws, plan.values,
                                                          plan.steps):
        if raw != last_raw:     # (the same as last time: the same Value)
            if kind <= SIGNED:  # most values, unpacked already: no call to _value
                value = Value(Exact(raw, scaler), unit)
            else:
                value = _value(raw, kind, scaler, unit)
        values.append(value)
    plan.raws, plan.values = raws, values
    reading = Reading()
    reading.values = list(zip(plan.codes, values))
    if plan.marked:
        channel_id = cosem.note_ids(reading, [(plan.codes[i], values[i].value, is_clock, rank)
                                              for i, is_clock, rank in plan.marked])
        reading.meter_id = reading.meter_id or channel_id
    reading.timestamp = reading.timestamp or header_time
    return reading


def _value(raw, kind, scaler, unit):
    """What cosem._add_values makes of the value's bytes."""
    if kind == OCTETS:
        return Value(cosem.octets_text(raw), "")
    if kind == TEXT:   # a visible-string: ISO 646, every byte one character (as axdr._text)
        return Value(raw.decode("latin-1"), "")
    return Value(None, "")   # NOTHING


def _pattern(layout):
    """layout: the bytes between the values, and (kind, size) of each value between them."""
    return re.compile(b"".join(re.escape(part) if type(part) is bytes else b".{%d}" % part[1]
                               for part in layout), re.DOTALL)


_INT_FORMATS = {1: "b", 2: "h", 4: "i", 8: "q"}   # by size; upper case: unsigned


def _unpacker(layout):
    """struct's unpack_from for the layout: the integers as ints, the rest as their bytes."""
    out = [">"]
    for part in layout:
        if type(part) is bytes:
            out.append("%dx" % len(part))
        elif part[0] <= SIGNED:
            code = _INT_FORMATS[part[1]]
            out.append(code if part[0] == SIGNED else code.upper())
        else:
            out.append("%ds" % part[1])
    return struct.Struct("".join(out)).unpack_from


def build(buf, pos, model):
    """The plan of a body of structures (OBIS, integer | string | null[, scaler_unit]) at
    buf[pos:] (bytes that fastpush read without fault), or None for any other body."""
    if buf[pos] != STRUCTURE and buf[pos] != ARRAY or not 0 < buf[pos + 1] < 0x80:
        return None
    scalers = pushlists.MODELS.get(model)
    codes, steps, marked, layout = [], [], [], []
    mark, p = pos, pos + 2      # mark: where the bytes before the next value begin
    for _ in range(buf[pos + 1]):
        if buf[p] != STRUCTURE or buf[p + 2] != OCTET_STRING or buf[p + 3] != 6:
            return None
        code = bytes(buf[p + 4:p + 10])
        kind, at, size = _kind(buf, p + 10)
        if kind is None or code[2] == 0 and code[3] == 2 and code[4] == 0x81:
            return None         # (a list version: it may choose the register map)
        end = at + size
        if buf[p + 1] == 3:
            scaler_unit, p = _scaler_unit(buf, end)
            if scaler_unit is None:
                return None
        elif buf[p + 1] == 2:
            scaler_unit, p = None, end
        else:
            return None
        obis, unit, cd, rank, is_clock = cosem._CODES.get(code) or cosem._code(code)
        if scaler_unit is not None:
            scaler, unit = scaler_unit[0], pushlists.unit_text(scaler_unit[1])
        else:
            scaler = scalers.get(cd, 0) if scalers else 0
        if is_clock or rank >= 0:
            marked.append((len(steps), is_clock, rank))
        codes.append(obis)
        steps.append((kind, scaler, unit))
        layout += (bytes(buf[mark:at]), (kind, size))
        mark = end
    layout.append(bytes(buf[mark:p]))
    return Plan(model, _pattern(layout), _unpacker(layout), codes, steps, marked)


def _kind(buf, tag_at):
    """(how to read, offset, size) of the value whose tag is at tag_at; (None, 0, 0) if none
    of ours. An octet string's length byte is part of the layout: a new length, a new plan."""
    tag = buf[tag_at]
    if tag in _INTEGERS:
        size, signed = _INTEGERS[tag]
        return SIGNED if signed else UNSIGNED, tag_at + 1, size
    if (tag == OCTET_STRING or tag == VISIBLE_STRING) and buf[tag_at + 1] < 0x80:
        return OCTETS if tag == OCTET_STRING else TEXT, tag_at + 2, buf[tag_at + 1]
    if tag == NULL:
        return NOTHING, tag_at + 1, 0
    return None, 0, 0
