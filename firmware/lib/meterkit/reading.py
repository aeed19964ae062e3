"""A decoded frame: the meter's values, exact, in stream order, plus what we know about it.

`to_json()` writes the decode contract's line (reading_json.py). json_string/json_value write JSON
by hand, not with a json module, so that CPython and MicroPython print byte-identical output
(MicroPython's json escapes differently) and Exact numbers print as the meter stated them.
"""
from .exact import Exact


class Value:
    """What a meter said for one OBIS code. Never changed once made: decoders share a Value
    between the readings of lines and registers that repeat, and it renders its JSON once."""
    __slots__ = ("value", "unit", "timestamp", "json")

    def __init__(self, value, unit="", timestamp=None):
        self.value = value          # Exact, str, or None (an empty COSEM value)
        self.unit = unit
        self.timestamp = timestamp  # M-Bus channel objects carry their own
        self.json = None            # value_fields(), once made

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
        global _reading_json
        if _reading_json is None:   # (an import statement per line costs the host ~1 us)
            from .reading_json import reading_json as _reading_json
        return _reading_json(self, harmonized)


_reading_json = None


def value_fields(v):
    """'"value": 1.5, "unit": "kWh"': the fields every JSON form of a Value has, made once."""
    text = v.json
    if text is None:
        if is_plain(v.unit):   # (no quoted copy of the unit made first)
            text = '"value": %s, "unit": "%s"' % (json_value(v.value), v.unit)
        else:
            text = '"value": %s, "unit": %s' % (json_value(v.value), json_string(v.unit))
        v.json = text
    return text


def json_value(v):
    if type(v) is Exact:   # most values
        return str(v)
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (Exact, int)):
        return str(v)
    return json_string(v)


def add_entry(out, obis, value):
    """Append the pieces of '"obis": {"value": …, "unit": …[, "timestamp": …]}' to out, for
    the caller to join once: the contract's values and the raw state payload."""
    if is_plain(obis):   # (no quoted copy of the code made first)
        out.append('"')
        out.append(obis)
        out.append('": {')
    else:
        out.append(json_string(obis))
        out.append(": {")
    out.append(value_fields(value))
    if value.timestamp is not None:
        out.append(', "timestamp": ')
        out.append(json_string(value.timestamp))
    out.append("}")


def is_plain(s):
    """True when s goes into JSON as it is: printable ASCII without '"' or '\\'."""
    for ch in s:
        if ch == '"' or ch == "\\" or not " " <= ch <= "~":
            return False
    return True


if hasattr(str, "isascii"):   # CPython 3.7+: the same test in C (the loop above costs ~1 us)
    def is_plain(s):   # noqa: F811
        return s.isascii() and s.isprintable() and '"' not in s and "\\" not in s


def json_string(s):
    if is_plain(s):
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
