"""COSEM mapping: the typed values of a data-notification body -> a Reading.

A push body is one structure (or array) in one of these shapes, told apart by its items:

1. structures `(OBIS, value[, (scaler, unit)])` (Aidon, Kaifa AT/TINETZ);
2. a flat run `OBIS, value[, (scaler, unit)], OBIS, value, ...` (Kamstrup, Kaifa SE, EVN);
3. bare values without OBIS codes (Kaifa NO): the list version picks a layout in pushlists;
4. L+G / Iskra: item 0 is the capture-object list `[(class, OBIS, attribute, index), ...]`
   naming the items that follow, one to one.

Shapes 1 and 2 mix within one body (Kaifa MA309 sends its clock flat, then structures). Items
without an OBIS code (a leading date-time, a list version, a trailing meter number, null
padding) are "loose": they feed the timestamp, the model detection and the meter id.
"""
from ..clock import iso_datetime, valid_date
from ..errors import FormatError
from ..exact import Exact
from ..obis import is_logical_name, obis_text
from ..reading import Reading, Value
from . import pushlists
from .axdr import BitString

METER_ID_CODES = ("0-0:96.1.0", "0-0:42.0.0", "1-1:0.0.5", "1-0:0.0.5", "1-1:96.1.0")


def notification_reading(body, header_time=None, model=None):
    """Body Data of a data-notification (+ its date-time as ISO text) -> Reading.

    model: a pushlists.MODELS name to force a register map; None detects it from the frame.
    """
    items = list(body) if isinstance(body, (list, tuple)) else [body]
    reading = Reading()
    push_setup = None
    if items and _is_capture_list(items[0]):
        entries, push_setup = _from_capture_list(items[0], items, reading.warnings)
        loose = []
    else:
        entries, loose = _walk(items)
    version = _list_version(entries, items)
    if not entries:
        layout = pushlists.positional_layout(version, len(items))
        if layout is None:
            raise FormatError("push list without OBIS codes and no known layout (%d values, "
                              "list version '%s')" % (len(items), version))
        entries = [(code, value, None) for code, value in zip(layout, items)]
        loose = []
    return finish(reading, entries, loose, version, push_setup, header_time, model)


def finish(reading, entries, loose, version, push_setup, header_time, model):
    """The values of the entries (code, value, scaler_unit) into reading, with its time and
    meter id; loose: the items without an OBIS code. (fastpush.py finds entries in the bytes.)"""
    if model is None and (version or push_setup):   # neither: no register map applies
        labelled = [(obis_text(code), _plain_text(value)) for code, value, _ in entries]
        model = pushlists.model_for(version, push_setup, labelled)
    channel_id = _add_values(reading, entries, pushlists.MODELS.get(model))
    reading.timestamp = reading.timestamp or header_time or _loose_time(loose)
    reading.meter_id = reading.meter_id or _loose_id(loose, version) or channel_id
    return reading


def _add_values(reading, entries, scalers):
    """Convert and add each entry, then note the clock and meter id (note_ids) from the ones
    that can carry them. Returns what note_ids does."""
    values = reading.values
    marked = []                             # (obis, value, is clock, meter-id rank) for note_ids
    codes = _CODES
    for code, value, scaler_unit in entries:
        known = codes.get(code) if type(code) is bytes else None
        obis, unit, cd, rank, is_clock = known or _code(code)
        if scaler_unit is not None:
            scaler, unit = scaler_unit[0], pushlists.unit_text(scaler_unit[1])
        else:
            scaler = scalers.get(cd, 0) if scalers else 0
        if type(value) is int:              # most values: skip the type tests of _convert
            value = Exact(value, scaler)
        elif isinstance(value, _COMPOUND):
            reading.warnings.append("%s: compound value skipped" % obis)
            continue
        else:
            value, unit = _convert(value, scaler, unit)
        values.append((obis, Value(value, unit)))
        if is_clock or rank >= 0:
            marked.append((obis, value, is_clock, rank))
    return note_ids(reading, marked)


def note_ids(reading, marked):
    """From the (obis, value, is clock, meter-id rank) of the entries that may carry them, in
    push order: the first ISO clock value becomes the timestamp and the best-ranked meter id
    (METER_ID_CODES order, first occurrence of each code) the meter id. Returns the first
    channel device id (x-b:96.1.0), the last resort for the meter id."""
    seen = 0                                # bit r: the code of rank r already occurred
    best = len(METER_ID_CODES)
    channel_id = None
    for obis, value, is_clock, rank in marked:
        if is_clock and reading.timestamp is None and _is_iso(value):
            reading.timestamp = value
        if rank >= 0:                       # a meter id code (see _code)
            found = value if isinstance(value, str) and value else None
            if found and channel_id is None and obis.endswith(":96.1.0"):
                channel_id = found
            if not seen >> rank & 1:
                seen |= 1 << rank
                if found and rank < best:
                    reading.meter_id, best = found, rank
    return channel_id


_CODES = {}   # 6 bytes -> (text, default unit, C<<8|D, meter-id rank, is clock): same every push
MAX_CODES = 128


_COMPOUND = (list, tuple)


def _code(code):
    """What the mapping needs to know about an OBIS code, read once per code. The meter-id
    rank is its place in METER_ID_CODES, len(METER_ID_CODES) for other channel device ids
    (x-b:96.1.0), -1 for the rest."""
    text = obis_text(code)
    rank = -1
    if text in METER_ID_CODES:
        rank = METER_ID_CODES.index(text)
    elif text.endswith(":96.1.0"):
        rank = len(METER_ID_CODES)
    is_clock = code[0] == 0 and code[2] == 1 and code[3] == 0 and code[4] == 0
    known = (text, pushlists.default_unit(code), code[2] << 8 | code[3], rank, is_clock)
    if type(code) is bytes:
        if len(_CODES) >= MAX_CODES:        # bounded: noise can't grow it
            _CODES.clear()
        _CODES[code] = known
    return known


# ---- labelling ------------------------------------------------------------------------------

def _is_capture_list(item):
    if not isinstance(item, list) or not item:
        return False
    for obj in item:
        if not (isinstance(obj, tuple) and len(obj) == 4 and isinstance(obj[0], int)
                and isinstance(obj[1], bytes) and len(obj[1]) == 6 and isinstance(obj[2], int)):
            return False
    return True


def _from_capture_list(capture, items, warnings):
    """Capture object i names item i; only attribute 2 (the value) becomes a reading value."""
    if len(capture) != len(items):
        warnings.append("capture list names %d objects, the push carries %d"
                        % (len(capture), len(items)))
    entries, scalers, push_setup = [], [], None
    for (class_id, code, attribute, _), value in zip(capture, items):
        if class_id == 40:                  # the push setup itself (its list, its name)
            push_setup = obis_text(code)
        elif attribute == 3 and _is_scaler_unit(value):
            scalers.append((code, value))   # a register's scaler_unit pushed alongside
        elif attribute == 2:
            entries.append((code, value, None))
    if scalers:
        entries = [(code, value, _lookup(scalers, code)) for code, value, _ in entries]
    return entries, push_setup


def _lookup(pairs, key):
    for k, v in pairs:
        if k == key:
            return v
    return None


def _walk(items):
    """Shapes 1 and 2: pick out (OBIS, value, scaler_unit) wherever an OBIS code leads."""
    entries, loose = [], []
    i, n = 0, len(items)
    while i < n:
        item = items[i]
        if is_logical_name(item) and i + 1 < n:        # flat: OBIS, value[, (scaler, unit)]
            scaler_unit = items[i + 2] if i + 2 < n else None
            if scaler_unit is not None and _is_scaler_unit(scaler_unit):
                entries.append((item, items[i + 1], scaler_unit))
                i += 3
            else:
                entries.append((item, items[i + 1], None))
                i += 2
        elif isinstance(item, tuple) and len(item) in (2, 3) and is_logical_name(item[0]):
            scaler_unit = item[2] if len(item) == 3 and _is_scaler_unit(item[2]) else None
            entries.append((item[0], item[1], scaler_unit))
            i += 1
        else:
            if item is not None:            # Kamstrup pads missing phases with null-data
                loose.append(item)
            i += 1
    return entries, loose


def _is_scaler_unit(item):
    return (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], int)
            and isinstance(item[1], int) and not isinstance(item[0], bool)
            and -128 <= item[0] <= 127 and 0 <= item[1] <= 255)


def _list_version(entries, items):
    for code, value, _ in entries:
        if code[2] == 0 and code[3] == 2 and code[4] == 0x81:   # x-x:0.2.129, the list version
            return _plain_text(value)
    if items and not _is_datetime_bytes(items[0]):
        return _plain_text(items[0])
    return None


# ---- values ---------------------------------------------------------------------------------

def _convert(value, scaler, unit):
    """A typed value -> (Exact | str | None, unit text); numbers get their scaler exactly."""
    if isinstance(value, bool):
        return Exact(1 if value else 0), ""
    if isinstance(value, int):
        return Exact(value, scaler), unit
    if isinstance(value, Exact):
        return value.scaled(scaler), unit
    if isinstance(value, BitString):
        bits = "".join("1" if value.data[i // 8] & (0x80 >> i % 8) else "0"
                       for i in range(value.bits))
        return bits, ""
    if isinstance(value, (bytes, bytearray)):
        return octets_text(value), ""
    return value, ""                        # str or None


def octets_text(raw):
    """An octet string as a person reads it: date-time -> ISO, ASCII -> text, else hex."""
    if not raw:
        return None
    when = datetime_text(raw)
    if when is not None:
        return when
    text = _plain_text(raw)
    if text is not None:
        return text
    return "".join("%02X" % b for b in raw)


def _plain_text(value):
    """Printable ASCII octets -> str; None for anything else."""
    if isinstance(value, str):
        return value
    if type(value) is bytes:   # ids and names repeat in every push: read each once
        text = _TEXTS.get(value, _TEXTS)
        if text is _TEXTS:
            text = _ascii(value)
            if len(_TEXTS) >= MAX_TEXTS:   # bounded: changing octets can't grow it
                _TEXTS.clear()
            _TEXTS[value] = text
        return text
    if isinstance(value, bytearray):
        return _ascii(value)
    return None


_TEXTS = {}   # octet string -> its text, or None when it is not printable ASCII
MAX_TEXTS = 64


def _ascii(raw):
    if raw and all(0x20 <= b < 0x7F for b in raw):
        return "".join(chr(b) for b in raw)
    return None


def datetime_text(raw):
    """COSEM date-time (12 bytes) -> ISO text, or None when it is not a usable date-time.

    The deviation is minutes from local time to UTC (UTC = local + deviation), so CEST is
    -120 and prints +02:00; 0x8000 means unspecified and gives naive local time.
    """
    if not _is_datetime_bytes(raw):
        return None
    year = raw[0] << 8 | raw[1]
    month, day, hour, minute, second = raw[2], raw[3], raw[5], raw[6], raw[7]
    if second == 0xFF:
        second = 0
    if year == 0xFFFF or not valid_date(year, month, day, hour, minute, second):
        return None
    deviation = raw[9] << 8 | raw[10]
    offset = None
    if deviation != 0x8000:
        if deviation & 0x8000:
            deviation -= 0x10000
        if -900 <= deviation <= 900:
            offset = -deviation
    return iso_datetime(year, month, day, hour, minute, second, offset)


def _is_datetime_bytes(value):
    return isinstance(value, (bytes, bytearray)) and len(value) == 12 and value[0] < 0x20


def _is_iso(value):
    return isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] == "T"


def _loose_time(loose):
    for item in loose:
        when = datetime_text(item)
        if when is not None:
            return when
    return None


def _loose_id(loose, version):
    for item in reversed(loose):            # EVN: the meter number trails the list, unlabelled
        text = _plain_text(item)
        if text and text != version:
            return text
    return None


# ---- encoding (simulator, tests) ------------------------------------------------------------

def datetime_bytes(year, month, day, hour, minute, second, offset_minutes=None, weekday=0xFF):
    """The inverse of datetime_text: 12 bytes, deviation 0x8000 when the offset is unknown."""
    deviation = 0x8000 if offset_minutes is None else (-offset_minutes) & 0xFFFF
    return bytes((year >> 8, year & 0xFF, month, day, weekday, hour, minute, second, 0xFF,
                  deviation >> 8, deviation & 0xFF, 0x00))
