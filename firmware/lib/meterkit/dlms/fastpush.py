"""The common push shapes read straight from the A-XDR bytes into the Reading's values.

Most data-notification bodies are a structure (or array) of one of cosem.py's shapes:
structures `(OBIS, value[, (scaler, unit)])`, a flat run `OBIS, value[, (scaler, unit)], ...`
(the two mixed, with loose items between), or an L+G / Iskra capture-object list followed by the
bare values it names. read() finds their entries in the bytes, without the tree axdr.decode
builds, and hands them to cosem.finish as the recursive path does. Anything else (a nested value,
a scaler of another type, a positional list, a malformed or truncated item) gives None: then
axdr.decode and cosem.notification_reading read the body and say what is wrong. Both paths give
the same Reading (tests/test_fast_paths.py proves it on every vector and on generated bodies).
"""
from ..errors import FormatError
from ..reading import Reading
from . import cosem
from .axdr import ARRAY, ENUM, INTEGER, OCTET_STRING, STRUCTURE, _READERS, _leading, decode_length


def read(buf, pos, header_time, model, repeats):
    """(Reading, end of the body) for a body of a common shape at buf[pos:], else None.

    repeats: the ApduDecoder's memo of the body's leading item (axdr.decode's), so the capture
    list of a push is read once."""
    try:
        return _read(buf, pos, header_time, model, repeats)
    except (FormatError, IndexError, ValueError, TypeError):
        return None   # malformed: the recursive path names the fault


def _read(buf, pos, header_time, model, repeats):
    if buf[pos] != STRUCTURE and buf[pos] != ARRAY:
        return None
    count, p = decode_length(buf, pos + 1)
    if not count:
        return None
    reading = Reading()
    if buf[p] == ARRAY:   # an L+G / Iskra capture-object list, then the values it names
        capture, p = _leading(buf, p, repeats)
        if not cosem._is_capture_list(capture):
            return None
        items = [capture]
        for _ in range(count - 1):
            read = _READERS[buf[p]]
            if read is None:
                return None
            value, p = read(buf, p + 1, p)
            items.append(value)
        entries, push_setup = cosem._from_capture_list(capture, items, reading.warnings)
        loose, first = [], capture
    else:
        entries, loose, first, p = _labelled(buf, p, count)
        push_setup = None
        if entries is None:
            return None
    if not entries:
        return None   # a positional list: the recursive path looks its layout up
    version = cosem._list_version(entries, [first])
    return cosem.finish(reading, entries, loose, version, push_setup, header_time, model), p


def _labelled(buf, p, count):
    """Shapes 1 and 2 (cosem._walk) from the bytes: (entries, loose items, the first item or ()
    for a structure, end), or None entries for anything else."""
    entries, loose, first = [], [], None
    i = 0
    while i < count:
        at_first = i == 0
        if buf[p] == STRUCTURE:   # (OBIS, value[, (scaler, unit)])
            n = buf[p + 1]
            if n != 2 and n != 3 or buf[p + 2] != OCTET_STRING or buf[p + 3] != 6 \
                    or buf[p + 4] > 1:
                return None, None, None, p
            code = bytes(buf[p + 4:p + 10])
            read = _READERS[buf[p + 10]]
            if read is None:
                return None, None, None, p
            value, p = read(buf, p + 11, p + 10)
            scaler_unit = None
            if n == 3:
                scaler_unit, p = _scaler_unit(buf, p)
                if scaler_unit is None:
                    return None, None, None, p
            entries.append((code, value, scaler_unit))
            item = ()
            i += 1
        else:
            read = _READERS[buf[p]]
            if read is None:
                return None, None, None, p
            item, p = read(buf, p + 1, p)
            if type(item) is bytes and len(item) == 6 and item[0] <= 1 and i + 1 < count:
                # flat: OBIS, value[, (scaler, unit)]
                read = _READERS[buf[p]]
                if read is None:
                    return None, None, None, p
                value, p = read(buf, p + 1, p)
                scaler_unit = None
                if i + 2 < count:
                    scaler_unit, p = _scaler_unit(buf, p)
                entries.append((item, value, scaler_unit))
                i += 3 if scaler_unit is not None else 2
            else:
                if item is not None:   # Kamstrup pads missing phases with null-data
                    loose.append(item)
                i += 1
        if at_first:
            first = item
    return entries, loose, first, p


def _scaler_unit(buf, p):
    """((scaler, unit enum), end) for `02 02 0F s 16 u` at p, else (None, p)."""
    if buf[p] == STRUCTURE and buf[p + 1] == 2 and buf[p + 2] == INTEGER and buf[p + 4] == ENUM:
        scaler = buf[p + 3]
        return (scaler - 256 if scaler > 127 else scaler, buf[p + 5]), p + 6
    return None, p
