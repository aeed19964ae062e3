"""OBIS codes (IEC 62056-61): six value groups A-B:C.D.E.F.

Printed as `A-B:C.D.E`, with `.F` only when F is not 255 (the decode contract's form).
"""


_TEXTS = {}   # 6 bytes -> text: a meter sends the same few dozen codes in every frame
MAX_TEXTS = 128


def obis_text(code):
    """6 bytes (DLMS logical name) or a 5/6-tuple -> 'A-B:C.D.E[.F]'."""
    cacheable = type(code) is bytes   # bytearrays can't be keys; tuples are rare
    text = _TEXTS.get(code) if cacheable else None
    if text is None:
        text = "%d-%d:%d.%d.%d" % (code[0], code[1], code[2], code[3], code[4])
        if len(code) > 5 and code[5] != 255:
            text += ".%d" % code[5]
        if cacheable:
            if len(_TEXTS) >= MAX_TEXTS:   # bounded: noise can't grow it
                _TEXTS.clear()
            _TEXTS[code] = text
    return text


def obis_bytes(text):
    """'1-0:1.8.0' -> b'\\x01\\x00\\x01\\x08\\x00\\xff' (for encoders and push-list tables)."""
    ab, _, cdef = text.partition(":")
    a, _, b = ab.partition("-")
    fields = [a, b] + cdef.split(".")
    if not all(f.isdigit() for f in fields):   # (int()'s own message differs between runtimes)
        raise ValueError("bad OBIS code: '%s'" % text)
    parts = [int(f) for f in fields]
    if len(parts) == 5:
        parts.append(255)
    if len(parts) != 6 or not all(0 <= p <= 255 for p in parts):
        raise ValueError("bad OBIS code: '%s'" % text)
    return bytes(parts)


def is_logical_name(value):
    """A 6-byte octet string that looks like an OBIS code (A is 0..1, F mostly 255)."""
    return isinstance(value, _OCTETS) and len(value) == 6 and value[0] <= 1


_OCTETS = (bytes, bytearray)
