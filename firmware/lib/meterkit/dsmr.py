"""DSMR P1 telegram text -> Reading (the way back, for the simulator and tests: dsmr_encode.py).

Each data line is an OBIS code followed by value groups:

    1-0:1.8.1(001581.123*kWh)                         number*unit
    0-0:96.1.1(4B384547303034303436333935353037)      text (ids, tariff, version, messages)
    0-1:24.2.1(161129200000W)(00981.443*m3)           M-Bus channel: capture time, value
    0-1:24.3.0(090212160000)(00)(60)(1)(0-1:24.2.1)(m3)   DSMR 2.2/3 gas profile; its value
    (00001.001)                                        comes on a continuation line
    1-0:99.97.0(1)(0-0:96.7.19)(190326095015W)(0000002014*s)   logs: kept as text, verbatim

Timestamps YYMMDDhhmmssX: X = W (winter, +01:00) or S (summer, +02:00).
"""
import sys

from .errors import CrcError, FormatError
from .exact import Exact
from .link.p1 import check_crc, crc_fields, header_end, holds_binary
from .obis import obis_bytes, obis_text
from .reading import Reading, Value

CLOCK = "0-0:1.0.0"
_CLOCK_CODE = b"\x00\x00\x01\x00\x00"

# Equipment identifiers, best first: DSMR 4/5, DSMR 2.2/Iskra/E.ON, Smarty, EasyMeter Q3D.
METER_IDS = ("0-0:96.1.1", "0-0:96.1.0", "0-0:42.0.0", "0-0:96.1.255", "1-0:0.0.0")

# ' C.D ' of codes whose unit-less values are text even when they are all digits: identifiers,
# tariff indicator '0002', version '42', messages, status words, error register, time and date.
# (A string: it costs a tenth of the heap of a tuple of tuples on the device.)
_TEXT_CODES = " 96.1 96.13 96.14 0.2 42.0 0.0 96.5 97.97 0.9 "

# Versions whose telegrams always carry a CRC: DSMR 4/5 (1-3:0.2.8), Belgian e-MUCS (0-0:96.1.4).
_CRC_VERSIONS = ("1-3:0.2.8", "0-0:96.1.4")

# How a code's value group without a unit reads: a number, text, or the telegram time.
_NUMBER, _TEXT, _TIME = 0, 1, 2


def __getattr__(name):
    # the encoders (simulator, tests) live in dsmr_encode: the dongle only decodes, never loads them
    if name in ("encode_reading", "dsmr_timestamp"):
        from . import dsmr_encode
        return getattr(dsmr_encode, name)
    raise AttributeError(name)


def decode_telegram(frame, crc="enforce"):
    """A whole P1 telegram ('/' … '!CRC') -> Reading.

    crc: "enforce" (a wrong CRC raises CrcError), "require" (so does a missing one: the stream
    asks for it once the meter has sent a CRC), "warn" (decode anyway and say so: the plaintext
    was already authenticated by a GCM tag), "ignore".
    """
    data = frame.encode() if isinstance(frame, str) else bytes(frame)
    if not data.startswith(b"/"):
        raise FormatError("a P1 telegram starts with '/'")
    end = data.find(b"!")
    if end < 0:
        raise FormatError("P1 telegram has no '!' end marker (cut short?)")
    reading = Reading()
    reading.source = "p1"
    verdict = None
    if crc != "ignore":
        if crc not in ("enforce", "require", "warn"):
            raise ValueError("crc must be 'enforce', 'require', 'warn' or 'ignore'")
        verdict = check_crc(data)
        if verdict is False:
            stated, computed = crc_fields(data)
            detail = "telegram says %s, computed %04X" % (stated, computed)
            if crc != "warn":
                raise CrcError("P1 CRC mismatch: " + detail)
            reading.warnings.append("inner P1 CRC did not match (%s)" % detail)
    strict = crc == "enforce" or crc == "require"
    if crc == "require" and verdict is None:
        raise CrcError("P1 telegram without a CRC from a meter that sends one (damaged?)")
    if strict and verdict is None and holds_binary(data, 1, end):
        raise FormatError("P1 telegram without a CRC holds bytes that are not text (line noise?)")
    if strict and verdict is None and header_end(data, 0, end) < 0:
        # no CRC vouches for it, so its start must be whole: the header line and the empty line
        # (lost bytes can make '/' plus a data line look like a header, and a copied '!' an end)
        raise FormatError("P1 telegram without a CRC lacks its header line and empty line")
    try:
        text = data[:end].decode()
    except (UnicodeError, ValueError):   # not UTF-8: read it as Latin-1
        text = "".join(chr(byte) for byte in data[:end])
    lines = text.split("\n")
    if not (MEMO_LINES and _memoized_lines(lines, reading)):
        _parse_lines(lines, reading)
    if not reading.values:
        raise FormatError("P1 telegram has no readable data lines")
    if crc == "enforce" and verdict is None:
        _check_version(reading)
    for obis in METER_IDS:   # the best identifier the telegram states as text
        value = reading.get(obis)
        if value is not None and isinstance(value.value, str):
            reading.meter_id = value.value
            break
    return reading


def _check_version(reading):
    """No CRC judged this telegram: it must not state a version whose telegrams always carry one
    (DSMR 4 and 5, e-MUCS): line noise ate it."""
    for obis in _CRC_VERSIONS:
        if reading.get(obis) is not None:
            raise CrcError("P1 telegram states %s, whose telegrams carry a CRC, but has none "
                           "(damaged?)" % obis)


def _parse_lines(lines, reading):
    """Each data line after the header line into reading; '(' continuation lines are joined to
    the line they continue."""
    number, pending = 0, None
    for index in range(1, len(lines)):
        line = lines[index].strip()
        if not line:
            continue
        if line[0] != "(":
            if pending:
                _add_line(reading, number, pending)
            number, pending = index + 1, line
        elif pending:
            pending += line
        else:
            reading.warnings.append("line %d skipped (continues nothing): %s"
                                    % (index + 1, line[:60]))
    if pending:
        _add_line(reading, number, pending)


def _add_line(reading, number, line):
    """One data line -> (obis, Value) in reading.values, or a warning saying why it was skipped."""
    pair = _said(reading, number, line)
    if pair is not None:
        reading.values.append(pair)


def _said(reading, number, line):
    """One data line -> its (obis, Value), or None and a warning saying why it was skipped."""
    paren = line.find("(")
    try:
        if paren <= 0:
            raise ValueError("no OBIS code followed by '('")
        obis, kind = _CODES.get(line[:paren]) or _code(line[:paren])
        if line.find(")", paren) == len(line) - 1:   # a single value group: most lines
            value, unit = _scalar(kind, line[paren + 1:-1])
            timestamp = None
        else:
            value, unit, timestamp = _interpret(kind, line, paren)
    except (ValueError, IndexError, KeyError) as error:
        # our own ValueError texts; never a built-in's (CPython and MicroPython word those apart)
        why = "malformed line"
        if isinstance(error, ValueError) and error.args and isinstance(error.args[0], str):
            why = error.args[0]
        reading.warnings.append("line %d skipped (%s): %s" % (number, why, line[:60]))
        return None
    if obis == CLOCK:
        reading.timestamp = value
    return obis, Value(value, unit, timestamp)


# OBIS text as written -> (canonical text, kind): a meter repeats the same ~40 codes. kind: how
# a value group without a unit reads.
_CODES = {}
MAX_CODES = 128
# The host's (MEMO_LINES): each line as it came, '\r' and all -> the (obis, Value) it said. Most
# lines repeat unchanged from telegram to telegram, and values are never changed, so such a line
# is one look-up and its Value is shared. The dongle reads one telegram a second and would pay
# ~6 KB of heap for the lines, replaced as they change and leaving holes.
MEMO_LINES = sys.implementation.name != "micropython"
if MEMO_LINES:   # defined only there: on the dongle the module code and what it skips are freed
    _LINES = {}
    MAX_LINES = 256

    def _memoized_lines(lines, reading):
        """_parse_lines for the host: every line is looked up whole in _LINES first (in one go),
        and only the lines not found there are read. False, the reading untouched, when a line
        continues another (DSMR 2.2/3 gas profiles): _parse_lines reads those."""
        memo, warned = _LINES, len(reading.warnings)
        said = list(map(memo.get, lines))  # (obis, Value) of a line seen before, () blank, None new
        said[0] = ()                        # the header line
        said.append(None)                   # where the search for new lines ends
        at, end = said.index(None), len(lines)
        while at < end:
            raw = lines[at]
            line = raw.strip()
            if line and line[0] == "(":
                del reading.warnings[warned:]
                reading.timestamp = None
                return False
            pair = _said(reading, at + 1, line) if line else ()
            said[at] = pair or ()
            if pair is not None and (not pair or pair[0] != CLOCK):   # (the clock line sets more)
                if len(memo) >= MAX_LINES:   # bounded: changing values can't grow it
                    memo.clear()
                memo[raw] = pair
            at = said.index(None, at + 1)
        reading.values = list(filter(None, said))
        return True


def _code(text):
    """'1-0:1.8.0' (or EasyMeter's '1-0:1.8.0*255') -> its _CODES entry, made once."""
    base, star, group_f = text.strip().partition("*")
    code = obis_bytes(base)
    if star:
        f = int(group_f) if group_f.isdigit() else -1
        if not 0 <= f <= 255:
            raise ValueError("bad OBIS code: '%s'" % text)
        code = code[:5] + bytes((f,))
    kind = _NUMBER
    if code[:5] == _CLOCK_CODE:
        kind = _TIME
    elif " %d.%d " % (code[2], code[3]) in _TEXT_CODES:
        kind = _TEXT
    if len(_CODES) >= MAX_CODES:   # bounded: a noisy line can't grow it
        _CODES.clear()
    canonical = obis_text(code)
    if canonical == text:   # as most meters write them: one string for the key and the value
        canonical = text
    known = _CODES[text] = (canonical, kind)
    return known


def _interpret(kind, line, i):
    """The value groups from line[i] ('(a)(b*u)'; nothing may follow the last ')') -> (value,
    unit, timestamp) as the meter means them."""
    groups = []
    while i < len(line):
        if line[i] != "(":
            raise ValueError("text after ')'")
        close = line.find(")", i)
        if close < 0:
            raise ValueError("'(' without ')'")
        groups.append(line[i + 1:close])
        i = close + 1
    if kind == _TIME and len(groups) != 1:
        raise ValueError("the telegram time is one value")
    if len(groups) == 1:
        value, unit = _scalar(kind, groups[0])
        return value, unit, None
    if len(groups) == 2 and _is_timestamp(groups[0]):
        value, unit = _scalar(kind, groups[1])
        return value, unit, iso_timestamp(groups[0])
    if len(groups) >= 7 and _is_timestamp(groups[0]) and ":" in groups[4]:
        # IEC profile (DSMR 2.2/3 gas): (time)(status)(period)(count)(obis)(unit)(value)...
        value, unit = _scalar(kind, groups[-1])
        return value, unit or groups[5], iso_timestamp(groups[0])
    return "".join("(" + group + ")" for group in groups), "", None


def _scalar(kind, text):
    """One value group -> (value, unit): Exact number, text, ISO timestamp, or None for '()'."""
    text = text.strip()
    if not text:
        return None, ""
    if kind != _TIME:
        star = text.rfind("*")   # (a timestamp has none)
        if star >= 0:
            return Exact.parse(text[:star]), text[star + 1:]
    if kind == _TIME or (text[-1] in "WS" and _is_timestamp(text)):
        return iso_timestamp(text), ""
    if kind == _TEXT:
        return text, ""
    try:
        return Exact.parse(text), ""
    except ValueError:
        return text, ""


def _is_timestamp(text):
    digits = text[:12]
    return len(digits) == 12 and digits.isdigit() and text[12:] in ("", "W", "S")


def iso_timestamp(text):
    """'161113205757W' -> '2016-11-13T20:57:57+01:00'; without W/S -> naive local time."""
    if not _is_timestamp(text):
        raise ValueError("not a DSMR timestamp: '%s'" % text)
    given = text
    if _isascii is not None and not _isascii(text):   # CPython's other digits: as int() reads them
        text = "".join(["%02d" % int(text[i:i + 2]) for i in range(0, 12, 2)]) + text[12:]
    # the telegram's digits are iso_datetime's: two-digit fields compare as their numbers do
    yy, mo, d, h, mi, s = text[:2], text[2:4], text[4:6], text[6:8], text[8:10], text[10:12]
    if not ("01" <= mo <= "12" and "01" <= d <= "31" and h < "24" and mi < "60" and s < "61"):
        raise ValueError("impossible date: '%s'" % given)
    suffix = text[12:]   # W: winter time, +01:00; S: summer time, +02:00
    # M-Bus "no time yet" is 700101010000W (epoch 0)
    offset = "+01:00" if suffix == "W" else "+02:00" if suffix == "S" else ""
    return "%s%s-%s-%sT%s:%s:%s%s" % ("20" if yy < "70" else "19", yy, mo, d, h, mi, s, offset)


_isascii = getattr(str, "isascii", None)   # MicroPython's isdigit() is ASCII's
