"""Other devices' MQTT payloads -> Readings, driven by mapping files (JSON) so that a new device
type needs a file, not code.

A mapping file names a payload `format` and a table from the device's field names to OBIS codes
and units; the bridge then publishes the Reading with the firmware's own harmonized layout
(dongle.topics.harmonized), which does the unit conversion and the exact number printing.

    {"format": "tasmota", "section": "z", "timezone": "Europe/Zurich",
     "fields": {"Pi": {"obis": "1-0:1.7.0", "unit": "W"}, ...}}

Formats: `tasmota` (tele/<x>/SENSOR: {"Time": local ISO time, "<section>": {field: value}}),
`datacollector` (<base>/<id>/<NAME>: {"value", "timestamp"[, "unit", "obis"]}, which is also the
dongle's raw per-value layout), `meterkit_state` (the dongle's <base>/<id>/state document).
Numbers are parsed as decimal.Decimal and become Exact: no value passes through float.
"""
import datetime
import decimal
import json
import pathlib
import zoneinfo

from meterkit.clock import iso_datetime
from meterkit.errors import FormatError
from meterkit.exact import Exact
from meterkit.reading import Reading

FOLDER = pathlib.Path(__file__).resolve().parent
FORMATS = ("tasmota", "datacollector", "meterkit_state")
MAPPING_KEYS = ("description", "format", "section", "timezone", "fields")
FIELD_KEYS = ("obis", "unit")
MAX_DIGITS = 30          # a meter value is never 10**30; '1e999999999' must not become a huge string
MAX_EPOCH = 1 << 40


def builtin_names():
    return sorted(path.stem for path in FOLDER.glob("*.json"))


def load_mapping(name):
    """A built-in mapping by name ('tasmota-gplug') or a mapping file by path, checked."""
    path = FOLDER / (name + ".json")
    if not path.exists():
        path = pathlib.Path(name)
    try:
        doc = json.loads(path.read_text())
    except OSError:
        raise FormatError("no mapping %r: give a file or one of %s" % (name, ", ".join(builtin_names())))
    except ValueError as error:
        raise FormatError("mapping %s is not JSON: %s" % (path, error))
    return check_mapping(doc, "mapping %s" % path.name)


def check_mapping(doc, where):
    if not isinstance(doc, dict):
        raise FormatError("%s: must be a JSON object" % where)
    _known_keys(doc, MAPPING_KEYS, where)
    if doc.get("format") not in FORMATS:
        raise FormatError("%s.format: must be one of %s" % (where, ", ".join(FORMATS)))
    fields = doc.get("fields", {})
    if not isinstance(fields, dict):
        raise FormatError("%s.fields: must be an object" % where)
    for name, field in fields.items():
        path = "%s.fields.%s" % (where, name)
        if not isinstance(field, dict) or not isinstance(field.get("obis"), str):
            raise FormatError("%s: must be {\"obis\": \"1-0:1.7.0\", \"unit\": \"W\"}" % path)
        _known_keys(field, FIELD_KEYS, path)
    if "timezone" in doc:
        zone(doc["timezone"], where + ".timezone")
    return doc


def _known_keys(doc, known, where):
    for key in doc:
        if key not in known:
            raise FormatError("%s.%s: unknown key (known: %s)" % (where, key, ", ".join(known)))


def zone(name, where="timezone"):
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise FormatError("%s: unknown time zone %r (e.g. Europe/Zurich, UTC)" % (where, name))


def translate(mapping, meter_id, topic, payload, tz):
    """(Reading, received epoch or None), or None when the message carries no mapped value;
    FormatError when it is not what the format says."""
    return _FORMATS[mapping["format"]](mapping, meter_id, topic, payload, tz)


def parse_json(payload):
    """A JSON object with its numbers as int or Decimal (never float)."""
    try:
        doc = json.loads(payload, parse_float=decimal.Decimal)
    except (ValueError, UnicodeDecodeError) as error:
        raise FormatError("not JSON: %s" % error)
    if not isinstance(doc, dict):
        raise FormatError("not a JSON object")
    return doc


def _tasmota(mapping, meter_id, topic, payload, tz):
    doc = parse_json(payload)
    section = doc.get(mapping.get("section", "z"))
    if section is None:
        return None   # another sensor of the same Tasmota device
    if not isinstance(section, dict):
        raise FormatError("%r is not an object" % mapping.get("section", "z"))
    stamp = doc.get("Time")
    reading = Reading(meter_id, _iso(_parse_time(stamp, tz)) if stamp is not None else None)
    _add_fields(reading, mapping, section.items())
    return (reading, None) if reading.values else None


def _datacollector(mapping, meter_id, topic, payload, tz):
    name = topic.rsplit("/", 1)[-1]
    field = mapping.get("fields", {}).get(name)
    try:
        doc = parse_json(payload)
    except FormatError:
        if field is None:
            return None   # e.g. <base>/<id>/status "online": not a value topic
        raise
    obis = doc.get("obis") if isinstance(doc.get("obis"), str) and ":" in doc.get("obis") else None
    if field is None and obis is None:
        return None   # status, diagnostics, a value nobody harmonizes
    if "value" not in doc:
        raise FormatError("no \"value\"")
    unit = doc.get("unit")
    if not isinstance(unit, str):
        unit = field.get("unit", "") if field else ""
    try:
        value = exact(doc["value"])
    except FormatError:
        if field is None:
            return None   # the dongle's text values (serial numbers, clock): nothing to harmonize
        raise
    reading = Reading(meter_id)
    reading.add(obis or field["obis"], value, unit)
    return reading, _epoch(doc.get("timestamp"), tz)


def _meterkit_state(mapping, meter_id, topic, payload, tz):
    return reading_from_state(parse_json(payload), meter_id, tz)


def reading_from_state(doc, meter_id=None, tz=datetime.timezone.utc):
    """The dongle's raw state document -> (Reading, received epoch or None)."""
    values = doc.get("values")
    if not isinstance(values, dict):
        raise FormatError("no \"values\" object")
    reading = Reading(doc.get("meter_id") if isinstance(doc.get("meter_id"), str) else meter_id)
    for obis, value in values.items():
        if not isinstance(value, dict) or "value" not in value:
            raise FormatError("value %s: must be {\"value\", \"unit\"}" % obis)
        number = value["value"]
        if number is not None and not isinstance(number, str):
            number = exact(number)
        unit = value.get("unit") if isinstance(value.get("unit"), str) else ""
        reading.add(obis, number, unit, value.get("timestamp"))
    return reading, _epoch(doc.get("timestamp"), tz)


def _add_fields(reading, mapping, items):
    fields = mapping.get("fields", {})
    for name, value in items:
        field = fields.get(name)
        if field is not None:
            reading.add(field["obis"], exact(value), field.get("unit", ""))


def exact(value):
    """A JSON number (int or Decimal) or numeric text -> Exact, keeping the stated digits."""
    if isinstance(value, bool) or not isinstance(value, (int, decimal.Decimal, str)):
        raise FormatError("not a number: %r" % (value,))
    try:
        number = decimal.Decimal(str(value).strip())
    except decimal.InvalidOperation:
        raise FormatError("not a number: %r" % (value,))
    if not number.is_finite() or abs(number.adjusted()) > MAX_DIGITS:
        raise FormatError("not a meter value: %r" % (value,))
    return Exact.parse(format(number, "f"))


def _parse_time(text, tz):
    """ISO time text -> aware datetime; a naive time is in the device's zone (Tasmota: local)."""
    if not isinstance(text, str):
        raise FormatError("time %r is not ISO text" % (text,))
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise FormatError("time %r is not ISO 8601" % text)
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)


def _iso(moment):
    offset = moment.utcoffset().total_seconds() // 60
    return iso_datetime(moment.year, moment.month, moment.day, moment.hour, moment.minute,
                        moment.second, int(offset))


def _epoch(stamp, tz):
    """Epoch seconds from a number or ISO text; None when the payload states no time."""
    if stamp is None:
        return None
    if isinstance(stamp, (int, decimal.Decimal)) and not isinstance(stamp, bool):
        if not 0 <= stamp < MAX_EPOCH:   # JSON decimals are finite; huge ones are not times
            raise FormatError("timestamp %s is not epoch seconds" % stamp)
        return int(stamp)
    return int(_parse_time(stamp, tz).timestamp())


_FORMATS = {"tasmota": _tasmota, "datacollector": _datacollector, "meterkit_state": _meterkit_state}
