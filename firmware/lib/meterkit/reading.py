"""A decoded frame: the meter's values, exact, in stream order, plus what we know about it.

`to_json()` writes the decode contract's line (reading_json.py). json_string/json_value write JSON
by hand, not with a json module, so that CPython and MicroPython print byte-identical output
(MicroPython's json escapes differently) and Exact numbers print as the meter stated them.
"""
from .exact import Exact


class Value:
    __slots__ = ("value", "unit", "timestamp")

    def __init__(self, value, unit="", timestamp=None):
        self.value = value          # Exact, str, or None (an empty COSEM value)
        self.unit = unit
        self.timestamp = timestamp  # M-Bus channel objects carry their own

    def __repr__(self):
        return "Value(%r, %r)" % (self.value, self.unit)


class Reading:
    """values: list of (obis_text, Value) in the order the frame carries them."""

    leftover = 0   # bytes after the APDU body that the parser did not read (and warned about)

    def __init__(self, meter_id=None, timestamp=None, authenticated=None):
        self.meter_id = meter_id
        self.timestamp = timestamp
        self.authenticated = authenticated
        self.values = []
        self.warnings = []
        self.source = ""   # which framing it came from: p1, sht, hdlc, mbus, apdu

    def add(self, obis, value, unit="", timestamp=None):
        self.values.append((obis, Value(value, unit, timestamp)))

    def get(self, obis):
        for key, value in self.values:
            if key == obis:
                return value
        return None

    def to_json(self, harmonized=None):
        """The decode contract's line (written in reading_json, which the dongle never loads)."""
        from .reading_json import reading_json
        return reading_json(self, harmonized)


def json_value(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (Exact, int)):
        return str(v)
    return json_string(v)


def json_string(s):
    for ch in s:
        if ch == '"' or ch == "\\" or not " " <= ch <= "~":
            break
    else:
        return '"%s"' % s   # nothing to escape: most names, topics and values
    out = ['"']
    for ch in s:
        code = ord(ch)
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif code > 0xFFFF:   # JSON wants a surrogate pair
            code -= 0x10000
            out.append("\\u%04x\\u%04x" % (0xD800 + (code >> 10), 0xDC00 + (code & 0x3FF)))
        elif code < 0x20 or code > 0x7E:
            out.append("\\u%04x" % code)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)
