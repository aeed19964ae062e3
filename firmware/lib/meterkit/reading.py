"""A decoded frame: the meter's values, exact, in stream order, plus what we know about it.

`to_json()` writes the decode contract's line. It is written here, not with a json module, so that
CPython and MicroPython print byte-identical output (MicroPython dicts are unordered and its json
escapes differently) and so that Exact numbers print as the meter stated them.
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
        from .harmonize import harmonize
        if harmonized is None:
            harmonized = harmonize(self)
        parts = [
            '"meter_id": ' + json_value(self.meter_id),
            '"timestamp": ' + json_value(self.timestamp),
            '"authenticated": ' + json_value(self.authenticated),
            '"values": {' + ", ".join(_value_json(k, v) for k, v in self.values) + "}",
            '"harmonized": {' + ", ".join(
                json_string(k) + ": " + json_value(v) for k, v in harmonized) + "}",
        ]
        if self.warnings:
            parts.append('"warnings": [' + ", ".join(json_string(w) for w in self.warnings) + "]")
        return "{" + ", ".join(parts) + "}"


def _value_json(obis, v):
    text = json_string(obis) + ': {"value": ' + json_value(v.value) + ', "unit": ' + json_string(v.unit)
    if v.timestamp is not None:
        text += ', "timestamp": ' + json_string(v.timestamp)
    return text + "}"


def error_json(error):
    """The contract's line for a rejected frame."""
    return '{"error": {"kind": %s, "message": %s}}' % (json_string(error.kind), json_string(error.message))


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
    out = ['"']
    for ch in s:
        code = ord(ch)
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif code < 0x20 or code > 0x7E:
            out.append(_u_escape(code))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _u_escape(code):
    if code > 0xFFFF:   # JSON wants a surrogate pair
        code -= 0x10000
        return _u_escape(0xD800 + (code >> 10)) + _u_escape(0xDC00 + (code & 0x3FF))
    return "\\u%04x" % code
