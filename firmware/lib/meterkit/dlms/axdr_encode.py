"""A-XDR encoding: the inverse of axdr.decode, for the simulator's frames and the property tests.

Plain values encode as their natural type; wrap a value in `Typed(tag, value)` to pick a tag the
plain value does not imply (long-unsigned, date-time, float32, ...). Kept apart from axdr.py so the
dongle, which only decodes, never loads it.
"""
from ..exact import Exact
from .axdr import (ARRAY, BCD, BIT_STRING, BOOLEAN, DOUBLE_LONG, FLOAT64, LONG64, NULL,
                   OCTET_STRING, STRUCTURE, UTF8_STRING, VISIBLE_STRING, BitString, _FIXED_OCTETS,
                   _FLOATS, _INTEGERS)


class Typed:
    """Encoder hint: encode `value` with A-XDR type `tag`."""
    __slots__ = ("tag", "value")

    def __init__(self, tag, value):
        self.tag = tag
        self.value = value


def encode(value):
    """Plain value (or Typed) -> A-XDR bytes. ints default to double-long, or long64 if larger."""
    if isinstance(value, Typed):
        return _encode_typed(value.tag, value.value)
    if value is None:
        return b"\x00"
    if value is True or value is False:
        return bytes((BOOLEAN, 1 if value else 0))
    if isinstance(value, int):
        fits = -(1 << 31) <= value < (1 << 31)
        return _encode_typed(DOUBLE_LONG if fits else LONG64, value)
    if isinstance(value, (bytes, bytearray)):
        return _encode_typed(OCTET_STRING, value)
    if isinstance(value, str):
        ascii_only = all(ord(c) < 0x80 for c in value)
        return _encode_typed(VISIBLE_STRING if ascii_only else UTF8_STRING, value)
    if isinstance(value, list):
        return _encode_typed(ARRAY, value)
    if isinstance(value, tuple):
        return _encode_typed(STRUCTURE, value)
    if isinstance(value, BitString):
        return _encode_typed(BIT_STRING, value)
    if isinstance(value, Exact):
        return _encode_typed(FLOAT64, value)
    raise ValueError("A-XDR: cannot encode %r" % (value,))


def encode_length(n):
    if n < 0x80:
        return bytes((n,))
    size = (n.bit_length() + 7) // 8
    return bytes((0x80 | size,)) + n.to_bytes(size, "big")


def _encode_typed(tag, value):
    head = bytes((tag,))
    if tag in _INTEGERS:
        size, signed = _INTEGERS[tag]
        low = -(1 << (size * 8 - 1)) if signed else 0
        if not low <= value < low + (1 << (size * 8)):
            raise ValueError("A-XDR: %d does not fit type %d" % (value, tag))
        return head + (value % (1 << (size * 8))).to_bytes(size, "big")
    if tag == ARRAY or tag == STRUCTURE:
        return head + encode_length(len(value)) + b"".join(encode(v) for v in value)
    if tag == OCTET_STRING:
        return head + encode_length(len(value)) + bytes(value)
    if tag == VISIBLE_STRING or tag == UTF8_STRING:
        raw = value.encode("utf-8") if tag == UTF8_STRING else bytes(ord(c) for c in value)
        return head + encode_length(len(raw)) + raw
    if tag in _FIXED_OCTETS:
        if len(value) != _FIXED_OCTETS[tag]:
            raise ValueError("A-XDR: type %d takes %d bytes" % (tag, _FIXED_OCTETS[tag]))
        return head + bytes(value)
    if tag == BOOLEAN:
        return head + (b"\x01" if value else b"\x00")
    if tag == NULL:
        return head
    if tag == BIT_STRING:
        return head + encode_length(value.bits) + value.data
    if tag == BCD:
        return head + bytes(((value // 10) << 4 | value % 10,))
    if tag in _FLOATS:
        size, ebits, fbits = _FLOATS[tag]
        return head + float_bits(value, ebits, fbits).to_bytes(size, "big")
    raise ValueError("A-XDR: cannot encode type %d" % tag)


def float_bits(value, ebits, fbits):
    """Exact -> IEEE-754 bits; ValueError unless the value is exactly representable."""
    m, e = value.mantissa, value.exponent
    sign = 1 if m < 0 else 0
    m = abs(m)
    if e >= 0:
        n, k = m * 10 ** e, 0
    else:
        if m % 5 ** -e:
            raise ValueError("%s is not a binary fraction" % value)
        n, k = m // 5 ** -e, e
    if n == 0:
        return sign << (ebits + fbits)
    while n & 1 == 0:
        n >>= 1
        k += 1
    if n.bit_length() > fbits + 1:
        raise ValueError("%s needs more than %d bits" % (value, fbits + 1))
    shift = fbits + 1 - n.bit_length()
    n, k = n << shift, k - shift
    bias = (1 << (ebits - 1)) - 1
    biased = k + fbits + bias
    if biased <= 0:                          # subnormal: drop the implicit bit
        if n & ((1 << (1 - biased)) - 1):
            raise ValueError("%s underflows" % value)
        n, biased = n >> (1 - biased), 0
    elif biased >= (1 << ebits) - 1:
        raise ValueError("%s overflows" % value)
    return (sign << (ebits + fbits)) | (biased << fbits) | (n & ((1 << fbits) - 1))
