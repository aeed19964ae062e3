"""Readings -> P1 telegrams: the inverse of dsmr.py, for the simulator and the property tests.

Apart from dsmr.py and link/p1.py because the dongle only decodes: code it never runs would still
cost it heap. `dsmr.encode_reading`, `dsmr.dsmr_timestamp` and `p1.encode_telegram` load it.
"""
from .crc import crc16_arc
from .dsmr import CLOCK
from .errors import FormatError
from .exact import Exact


def encode_telegram(header, lines, crc=True):
    """'/' + header, a blank line, the data lines, '!' and (if crc) the CRC16/ARC, all CR LF."""
    body = "/" + header + "\r\n\r\n" + "".join(line + "\r\n" for line in lines) + "!"
    data = body.encode()
    if crc:
        data += b"%04X" % crc16_arc(data)
    return data + b"\r\n"


def encode_reading(header, values, timestamp=None):
    """Header + (obis, Value) pairs (+ telegram time, ISO) -> a valid telegram with CRC."""
    lines = []
    if timestamp is not None:
        lines.append("%s(%s)" % (CLOCK, dsmr_timestamp(timestamp)))
    for obis, value in values:
        groups = "(%s)" % _encode_value(obis, value)
        if value.timestamp is not None:
            groups = "(%s)" % dsmr_timestamp(value.timestamp) + groups
        lines.append(obis + groups)
    return encode_telegram(header, lines)


def _encode_value(obis, value):
    v = value.value
    if v is None:
        return ""
    if isinstance(v, Exact):
        return "%s*%s" % (v, value.unit) if value.unit else str(v)
    if obis == CLOCK:
        return dsmr_timestamp(v)
    for bad in "()!\r\n":
        if bad in v:
            raise FormatError("a P1 text value cannot contain %r" % bad)
    return v


def dsmr_timestamp(iso):
    """'2016-11-13T20:57:57+01:00' -> '161113205757W' (DSMR can only say +01:00 or +02:00)."""
    digits = iso[2:4] + iso[5:7] + iso[8:10] + iso[11:13] + iso[14:16] + iso[17:19]
    suffix = {"": "", "+01:00": "W", "+02:00": "S"}.get(iso[19:])
    if suffix is None or len(iso) < 19 or not digits.isdigit():
        raise FormatError("DSMR cannot state this time: %r" % iso)
    return digits + suffix
