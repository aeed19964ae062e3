"""Reading <-> compact bytes for the spool, exact and without float or json.

MicroPython's json.loads turns numbers into (32-bit on ESP32) floats, so a spooled reading never
round-trips through json: values stay integer mantissa + decimal exponent.

    version 1 | received (varint, epoch s) | flags 1 | meter_id | timestamp | source
    | count (varint) | values... | warning count (varint) | warnings...

A value is: obis | kind 1 | payload | unit | timestamp. OBIS codes that fit 'A-B:C.D.E[.F]' take
6 bytes (kind bit 0x80), anything else is text. Texts are varint(length + 1) + UTF-8, so None
(length 0) and "" differ. Numbers are zigzag varints. A DSMR5 telegram takes ~300-400 bytes.
"""
from meterkit.errors import FormatError
from meterkit.exact import Exact
from meterkit.obis import obis_text
from meterkit.reading import Reading

VERSION = 1
_NONE, _EXACT, _TEXT = 0, 1, 2
_BINARY_OBIS = 0x80
_AUTH = {None: 0, False: 1, True: 2}
_AUTH_BACK = (None, False, True)


def _varint(out, n):
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | 0x80 if n else byte)
        if not n:
            return


def _signed(out, n):
    _varint(out, n * 2 if n >= 0 else -n * 2 - 1)   # zigzag: small magnitudes stay small


def _text(out, s):
    if s is None:
        out.append(0)
        return
    if _STR_EXTENDS:   # MicroPython: the text's UTF-8 goes straight in, no copy made first
        at = len(out)
        out.append(0)
        out.extend(s)
        if len(out) - at < 0x80:   # length + 1 fits the one byte reserved for it
            out[at] = len(out) - at
            return
        out[at:] = b""
    data = s.encode()
    _varint(out, len(data) + 1)
    out.extend(data)


try:
    bytearray().extend("?")
    _STR_EXTENDS = True
except TypeError:   # CPython
    _STR_EXTENDS = False

_SEPARATORS = "-:..."   # after the groups A, B, C, D, E of 'A-B:C.D.E.F'


def _obis(out, code):
    """6 bytes when code is what obis_text writes ('A-B:C.D.E', '.F' unless F is 255), else the
    text. Read character by character into out: parsing it made a dozen objects per value."""
    at = len(out)
    out.append(_BINARY_OBIS)
    group, done = -1, 0   # the group being read (-1: no digit yet), groups written
    for ch in code:
        if "0" <= ch <= "9":
            if group == 0:   # a leading zero: not how obis_text writes it
                break
            group = (0 if group < 0 else group * 10) + ord(ch) - 48
            if group > 255:
                break
        elif group >= 0 and done < 5 and ch == _SEPARATORS[done]:
            out.append(group)
            group, done = -1, done + 1
        else:
            break
    else:
        if group >= 0 and (done == 4 or done == 5 and group != 255):
            out.append(group)
            if done == 4:
                out.append(255)
            return
    out[at:] = b""
    out.append(0)
    _text(out, code)


# encode() writes here: the buffer keeps its capacity, so a record costs the heap one allocation
# (the result) instead of a growing buffer's many
_scratch = bytearray()
_HEAD = bytes((VERSION,))


def encode(reading, received=0):
    """Reading (+ the dongle's clock when it arrived, epoch s) -> bytes."""
    out = _scratch
    out[:] = _HEAD
    _varint(out, received)
    out.append(_AUTH.get(reading.authenticated, 0))
    _text(out, reading.meter_id)
    _text(out, reading.timestamp)
    _text(out, reading.source)
    _varint(out, len(reading.values))
    for code, value in reading.values:
        _obis(out, code)
        v = value.value
        if isinstance(v, Exact):
            out.append(_EXACT)
            _signed(out, v.mantissa)
            _signed(out, v.exponent)
        elif v is None:
            out.append(_NONE)
        else:
            out.append(_TEXT)
            _text(out, str(v))
        _text(out, value.unit)
        _text(out, value.timestamp)
    _varint(out, len(reading.warnings))
    for warning in reading.warnings:
        _text(out, warning)
    return bytes(out)


class _Cursor:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def byte(self):
        b = self.data[self.pos]
        self.pos += 1
        return b

    def varint(self):
        n = shift = 0
        while True:
            b = self.byte()
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                return n
            shift += 7

    def signed(self):
        n = self.varint()
        return n >> 1 if not n & 1 else -((n + 1) >> 1)

    def text(self):
        n = self.varint()
        if not n:
            return None
        start = self.pos
        self.pos += n - 1
        if self.pos > len(self.data):
            raise IndexError
        return str(self.data[start:self.pos], "utf-8")

    def obis(self):
        if self.byte() == _BINARY_OBIS:
            self.pos += 6
            if self.pos > len(self.data):
                raise IndexError
            return obis_text(self.data[self.pos - 6:self.pos])
        return self.text()


def decode(data):
    """bytes -> (Reading, received); a damaged record raises FormatError."""
    try:
        return _decode(_Cursor(data))
    except (IndexError, ValueError, UnicodeError) as e:
        raise FormatError("damaged spool record (%d bytes): %r" % (len(data), e))


def _decode(c):
    if c.byte() != VERSION:
        raise ValueError("unknown record version")
    received = c.varint()
    reading = Reading(authenticated=_AUTH_BACK[c.byte()])
    reading.meter_id = c.text()
    reading.timestamp = c.text()
    reading.source = c.text() or ""
    for _ in range(c.varint()):
        code = c.obis()
        kind = c.byte()
        if kind == _EXACT:
            mantissa = c.signed()
            value = Exact(mantissa, c.signed())
        elif kind == _TEXT:
            value = c.text()
        elif kind == _NONE:
            value = None
        else:
            raise ValueError("unknown value kind %d" % kind)
        reading.add(code, value, c.text() or "", c.text())
    for _ in range(c.varint()):
        reading.warnings.append(c.text())
    if c.pos != len(c.data):
        raise ValueError("%d trailing bytes" % (len(c.data) - c.pos))
    return reading, received
