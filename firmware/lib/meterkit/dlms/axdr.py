"""A-XDR encoded DLMS Data (IEC 62056-6-2): decode self-describing typed values.

Decoded values are plain Python, chosen so the COSEM layer can tell them apart:

    null-data              None            boolean               bool
    array, compact-array   list            structure             tuple
    integer types, enum    int             bcd                   int (two BCD digits)
    octet-string           bytes           date-time/date/time   bytes (raw 12/5/4 bytes)
    visible/utf8-string    str             bit-string            BitString
    float32/float64        Exact (exact value of the IEEE bits; NaN/infinity -> None)

axdr_encode.py is the inverse (for the simulator and the tests; the dongle never loads it).
"""
from ..errors import FormatError
from ..exact import Exact

NULL, ARRAY, STRUCTURE, BOOLEAN, BIT_STRING = 0, 1, 2, 3, 4
DOUBLE_LONG, DOUBLE_LONG_UNSIGNED, OCTET_STRING, VISIBLE_STRING = 5, 6, 9, 10
UTF8_STRING, BCD, INTEGER, LONG, UNSIGNED, LONG_UNSIGNED = 12, 13, 15, 16, 17, 18
COMPACT_ARRAY, LONG64, LONG64_UNSIGNED, ENUM, FLOAT32, FLOAT64 = 19, 20, 21, 22, 23, 24
DATE_TIME, DATE, TIME = 25, 26, 27

_CONTAINERS = (ARRAY, STRUCTURE, COMPACT_ARRAY)
MAX_DEPTH = 12   # meters nest 3-4 levels; deeper is garbage (and would exhaust a small stack)

# tag -> (size in bytes, signed)
_INTEGERS = {
    DOUBLE_LONG: (4, True), DOUBLE_LONG_UNSIGNED: (4, False), INTEGER: (1, True),
    LONG: (2, True), UNSIGNED: (1, False), LONG_UNSIGNED: (2, False), LONG64: (8, True),
    LONG64_UNSIGNED: (8, False), ENUM: (1, False),
}
_FIXED_OCTETS = {DATE_TIME: 12, DATE: 5, TIME: 4}
# float tag -> (byte size, exponent bits, fraction bits)
_FLOATS = {FLOAT32: (4, 8, 23), FLOAT64: (8, 11, 52)}


class BitString:
    __slots__ = ("bits", "data")

    def __init__(self, bits, data):
        self.bits = bits    # number of bits; data holds them MSB first, padded to whole bytes
        self.data = bytes(data)

    def __eq__(self, other):
        return isinstance(other, BitString) and (self.bits, self.data) == (other.bits, other.data)

    def __repr__(self):
        return "BitString(%d, %r)" % (self.bits, self.data)


# ---- decoding -------------------------------------------------------------------------------

def decode(buf, pos=0, repeats=None):
    """One Data item at buf[pos:] -> (value, next_pos). FormatError on anything malformed.

    repeats: a list the caller keeps between calls (one per meter). When the top-level
    structure's first item is a container that repeats the last call's byte for byte (the
    capture-object list L+G and Iskra pushes lead with), it is decoded once and shared between
    results, so callers must not modify it.
    """
    try:
        if repeats is not None and pos < len(buf) and buf[pos] in (ARRAY, STRUCTURE):
            return _decode_repeating(buf, pos, repeats)
        return _decode(buf, pos, 0)
    except (IndexError, ValueError, TypeError) as e:
        raise FormatError("A-XDR: malformed data at offset %d (%s)" % (pos, e))


def _decode_repeating(buf, pos, repeats):
    """_decode of a top-level array/structure, its first item looked up in `repeats`."""
    count, p = decode_length(buf, pos + 1)
    _need(buf, p, count, pos)
    item, p = _leading(buf, p, repeats) if count else (None, p)
    items, p = _items(buf, p, count - 1, 1, [item] if count else [])
    return (items if buf[pos] == ARRAY else tuple(items)), p


def _leading(buf, p, repeats):
    """The body's first item. A container that repeats the last body's first item byte for byte
    (a push's capture-object list) is not decoded again: the same bytes say the same."""
    if repeats and buf[p:p + len(repeats[0])] == repeats[0]:
        return repeats[1], p + len(repeats[0])
    item, end = _decode(buf, p, 1)
    repeats[:] = (bytes(buf[p:end]), item) if buf[p] in _CONTAINERS else ()
    return item, end


def _decode(buf, pos, depth):
    if pos >= len(buf):
        raise FormatError("A-XDR: data truncated at offset %d" % pos)
    tag = buf[pos]
    read = _READERS[tag]
    if read is not None:                 # one table look-up per simple value
        return read(buf, pos + 1, pos)
    if tag == ARRAY or tag == STRUCTURE:
        _check_depth(depth, pos)
        count, p = decode_length(buf, pos + 1)
        _need(buf, p, count, pos)    # every element takes at least one byte
        items, p = _items(buf, p, count, depth + 1, [])
        return (items if tag == ARRAY else tuple(items)), p
    if tag == COMPACT_ARRAY:
        _check_depth(depth, pos)
        desc, p = _type_description(buf, pos + 1, depth + 1)
        return _compact_array(buf, p, desc, depth + 1)
    return _simple(tag, buf, pos + 1, pos)


def _items(buf, p, count, depth, items):
    """`count` Data items from p appended to `items`; simple ones read without _decode's call."""
    size, readers = len(buf), _READERS
    for _ in range(count):
        read = readers[buf[p]] if p < size else None
        if read is not None:
            item, p = read(buf, p + 1, p)
        else:
            item, p = _decode(buf, p, depth)
        items.append(item)
    return items, p


def _simple(tag, buf, p, at):
    """The body of a non-container type starting at p (its tag was at `at`)."""
    read = _READERS[tag]
    if read is None:
        raise FormatError("A-XDR: unknown type tag 0x%02X at offset %d" % (tag, at))
    return read(buf, p, at)


# Readers of the simple types: (buf, body position, tag position) -> (value, next position)

def _integer(size, signed):
    bits = size * 8

    def read(buf, p, at):
        end = p + size
        if end > len(buf):
            _need(buf, p, size, at)
        if size == 4:                   # the usual register: no slice to allocate
            value = buf[p] << 24 | buf[p + 1] << 16 | buf[p + 2] << 8 | buf[p + 3]
        elif size == 2:
            value = buf[p] << 8 | buf[p + 1]
        else:
            value = buf[p] if size == 1 else int.from_bytes(buf[p:end], "big")
        if signed and value >> (bits - 1):
            value -= 1 << bits
        return value, end
    return read


def _octets(buf, p, at):
    n = buf[p] if p < len(buf) else 0x80   # (0x80 lets decode_length report the problem)
    if n < 0x80:
        p += 1
    else:
        n, p = decode_length(buf, p)
    end = p + n
    if end > len(buf):
        _need(buf, p, n, at)
    return bytes(buf[p:end]), end


def _string(tag):
    def read(buf, p, at):
        raw, p = _octets(buf, p, at)
        return _text(raw, tag, at), p
    return read


def _null(buf, p, at):
    return None, p


def _boolean(buf, p, at):
    _need(buf, p, 1, at)
    return buf[p] != 0, p + 1


def _fixed_octets(n):
    def read(buf, p, at):
        _need(buf, p, n, at)
        return bytes(buf[p:p + n]), p + n
    return read


def _bit_string(buf, p, at):
    bits, p = decode_length(buf, p)
    n = (bits + 7) // 8
    _need(buf, p, n, at)
    return BitString(bits, buf[p:p + n]), p + n


def _bcd(buf, p, at):
    _need(buf, p, 1, at)
    b = buf[p]
    return (b >> 4) * 10 + (b & 15), p + 1


def _ieee(size, ebits, fbits):
    def read(buf, p, at):
        return _float(_int(buf, p, size, False, at), ebits, fbits), p + size
    return read


def _readers():
    table = [None] * 256
    for tag in _INTEGERS:
        table[tag] = _integer(*_INTEGERS[tag])
    for tag in _FIXED_OCTETS:
        table[tag] = _fixed_octets(_FIXED_OCTETS[tag])
    for tag in _FLOATS:
        table[tag] = _ieee(*_FLOATS[tag])
    table[OCTET_STRING] = _octets
    table[VISIBLE_STRING] = _string(VISIBLE_STRING)
    table[UTF8_STRING] = _string(UTF8_STRING)
    table[NULL], table[BOOLEAN], table[BIT_STRING], table[BCD] = _null, _boolean, _bit_string, _bcd
    return table


_READERS = _readers()   # tag -> reader; None for containers and unknown tags


def decode_length(buf, pos):
    """A-XDR length: one byte < 0x80, or 0x8N followed by N big-endian bytes."""
    if pos >= len(buf):
        _need(buf, pos, 1, pos)
    first = buf[pos]
    if first < 0x80:
        return first, pos + 1
    n = first & 0x7F
    if n == 0 or n > 4:
        raise FormatError("A-XDR: bad length byte 0x%02X at offset %d" % (first, pos))
    _need(buf, pos + 1, n, pos)
    return _int(buf, pos + 1, n, False, pos), pos + 1 + n


def _need(buf, pos, n, at):
    if pos + n > len(buf):
        raise FormatError("A-XDR: item at offset %d needs %d bytes, %d left"
                          % (at, n, max(0, len(buf) - pos)))


def _check_depth(depth, pos):
    if depth >= MAX_DEPTH:
        raise FormatError("A-XDR: nesting deeper than %d at offset %d" % (MAX_DEPTH, pos))


def _int(buf, pos, size, signed, at):
    _need(buf, pos, size, at)
    value = int.from_bytes(bytes(buf[pos:pos + size]), "big")
    if signed and value >> (size * 8 - 1):
        value -= 1 << (size * 8)
    return value


def _text(raw, tag, at):
    if tag == VISIBLE_STRING:     # ISO 646; latin-1 by hand (MicroPython decodes only UTF-8)
        return "".join(chr(b) for b in raw)
    try:
        return raw.decode("utf-8")
    except (UnicodeError, ValueError):
        raise FormatError("A-XDR: invalid UTF-8 string at offset %d" % at)


def _float(bits, ebits, fbits):
    """IEEE-754 bits -> Exact, exactly: m * 2**k written as (m * 5**-k) * 10**k."""
    sign = -1 if bits >> (ebits + fbits) else 1
    biased = (bits >> fbits) & ((1 << ebits) - 1)
    frac = bits & ((1 << fbits) - 1)
    if biased == (1 << ebits) - 1:
        return None                         # NaN or infinity: no meter value
    bias = (1 << (ebits - 1)) - 1
    if biased:
        frac |= 1 << fbits
    else:
        biased = 1                          # subnormal
    k = biased - bias - fbits
    if frac == 0:
        return Exact(0, 0)
    while frac & 1 == 0:
        frac >>= 1
        k += 1
    if k >= 0:
        return Exact(sign * (frac << k), 0)
    return Exact(sign * frac * 5 ** -k, k)


# compact-array: a type description, then the values without their tags

def _type_description(buf, pos, depth):
    _check_depth(depth, pos)
    _need(buf, pos, 1, pos)
    tag = buf[pos]
    if tag == ARRAY:
        count = _int(buf, pos + 1, 2, False, pos)
        sub, p = _type_description(buf, pos + 3, depth + 1)
        return (ARRAY, count, sub), p
    if tag == STRUCTURE:
        count, p = decode_length(buf, pos + 1)
        _need(buf, p, count, pos)
        subs = []
        for _ in range(count):
            sub, p = _type_description(buf, p, depth + 1)
            subs.append(sub)
        return (STRUCTURE, subs), p
    if tag == COMPACT_ARRAY:
        raise FormatError("A-XDR: nested compact-array at offset %d" % pos)
    return tag, pos + 1


def _compact_array(buf, pos, desc, depth):
    size, p = decode_length(buf, pos)
    _need(buf, p, size, pos)
    end = p + size
    items = []
    while p < end:
        item, after = _untagged(buf, p, desc, depth)
        if after == p:   # elements of no bytes (null-data, empty structure) would never end
            raise FormatError("A-XDR: compact-array of empty elements at offset %d" % pos)
        items.append(item)
        p = after
    if p != end:
        raise FormatError("A-XDR: compact-array contents overrun at offset %d" % pos)
    return items, end


def _untagged(buf, pos, desc, depth):
    _check_depth(depth, pos)
    if isinstance(desc, int):
        if desc == ARRAY or desc == STRUCTURE:
            raise FormatError("A-XDR: bad compact-array description at offset %d" % pos)
        return _simple(desc, buf, pos, pos)
    if desc[0] == ARRAY:
        _need(buf, pos, desc[1], pos)
        items = []
        for _ in range(desc[1]):
            item, pos = _untagged(buf, pos, desc[2], depth + 1)
            items.append(item)
        return items, pos
    items = []
    for sub in desc[1]:
        item, pos = _untagged(buf, pos, sub, depth + 1)
        items.append(item)
    return tuple(items), pos
