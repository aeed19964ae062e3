"""MQTT topics and payloads for a Reading: harmonized, raw, smartmeter-datacollector
(topics_raw.py) and Home Assistant discovery layouts (discovery.py). Pure functions, no I/O: the dongle and the host publish
the same bytes. The iter_* generators make one message at a time (the dongle's heap); the list
functions are the same messages at once.

Payloads are JSON written by hand (reading.json_string/json_value) so keys keep their order, meter
values print exactly as Exact numbers, and MicroPython and CPython give identical bytes.
Timestamps are epoch seconds: the meter's clock when it states one, else the receive time passed
in (`received`), else null. A naive meter time (no UTC offset) is taken as UTC.
"""
from meterkit.clock import epoch_seconds
from meterkit.harmonize import entries
from meterkit.reading import add_entry, json_string, json_value

MAX_ID = 64

_READ = ["", ""]   # the last (meter id, meter_name): every reading of a meter states the same id


def meter_name(reading):
    """The meter id as people read it. DSMR states its equipment id (0-0:96.1.1, Smarty's
    0-0:42.0.0, ...) as hex-encoded ASCII: where that hex is printable ASCII, the ASCII
    ('45303035...' -> 'E005...'); any other id as the meter sent it. The raw values keep the
    hex. Only P1 telegrams: a DLMS meter's ids are text already (a number like 7340734073407340
    would read as 's@s@s@s@')."""
    text = reading.meter_id
    if not isinstance(text, str) or reading.source not in ("p1", "sht"):
        return text
    if text != _READ[0]:
        _READ[0], _READ[1] = text, _ascii(text)
    return _READ[1]


def _ascii(text):
    if len(text) < 2 or len(text) % 2:
        return text
    chars = []
    for i in range(0, len(text), 2):
        try:
            code = int(text[i:i + 2], 16)
        except ValueError:
            return text
        if not 0x20 <= code <= 0x7E:
            return text
        chars.append(chr(code))
    return "".join(chars).strip() or text


def device_id(reading):
    """The meter's name (meter_name) made safe for topics and HA ids: [A-Za-z0-9_-] only;
    'meter' when none. Topics, pages and HA's device name use it."""
    return _safe(meter_name(reading))


def ha_key(reading):
    """What HA knows the meter by: its id as sent, made safe (for DSMR the hex), so that the
    unique_ids, device identifiers and discovery topics of entities made before ids were read as
    ASCII stay the same, and HA keeps their history."""
    return _safe(reading.meter_id)


def _safe(text):
    safe = text[:MAX_ID] if isinstance(text, str) else ""
    for ch in safe:   # most ids are safe already: nothing to copy
        if not ("a" <= ch <= "z" or "A" <= ch <= "Z" or "0" <= ch <= "9" or ch in "_-"):
            safe = safe.replace(ch, "_")
    return safe.strip("_") or "meter"


def harmonized(reading, base="smartmeter", received=None):
    """[(topic, payload)]: <base>/<id>/<quantity>/<name> -> {"timestamp": s, "value": n}."""
    return list(iter_harmonized(reading, base, received))


def iter_harmonized(reading, base="smartmeter", received=None):
    root, stamp, found = harmonized_parts(reading, base, received)
    for entry in found:
        yield harmonized_message(root, stamp, entry)


def harmonized_parts(reading, base="smartmeter", received=None):
    """(topic root, stamp, harmonize.entries()): the harmonized messages in a few small objects,
    half the heap of the messages themselves; harmonized_message() makes each when it is sent."""
    return ("%s/%s/" % (base, device_id(reading)), json_value(_timestamp(reading, received)),
            entries(reading))


def harmonized_message(root, stamp, entry):
    """entry: (position, name, value, channel, quantity, ...) of harmonize.entries()."""
    return ("%s%s/%s" % (root, entry[4], entry[1]),
            ('{"timestamp": %s, "value": %s}' % (stamp, entry[2])).encode())


def raw_state(reading, base, received=None):
    """(topic, payload): <base>/<id>/state with every value the meter sent, in frame order;
    "meter_id" is the meter's name (meter_name), the values keep its id as sent."""
    out = ['{"timestamp": ', json_value(_timestamp(reading, received)), ', "meter_id": ',
           json_value(meter_name(reading)), ', "values": {']
    for obis, value in reading.values:
        add_entry(out, obis, value)
        out.append(", ")
    if reading.values:
        out.pop()
    out.append("}}")
    return "%s/%s/state" % (base, device_id(reading)), "".join(out).encode()


def raw_values(reading, base, received=None):
    """[(topic, payload)] in the smartmeter-datacollector layout (topics_raw.py, loaded only by
    who publishes it: its name table is ~1.5 KB of heap)."""
    from .topics_raw import iter_raw_values
    return list(iter_raw_values(reading, base, received))


def availability(base, id):
    """(topic, online payload, offline payload): the last will and the birth message."""
    return "%s/%s/status" % (base, id), b"online", b"offline"


def diagnostics(stats, base, id):
    """(topic, payload): <base>/<id>/diagnostics, the dongle's counters as JSON, keys sorted.

    stats keys: frames_ok/crc/auth/replay/format, last_error, heap_free, uptime_s, rssi, version,
    queued, dropped (any subset, ints/strs/None). frames_errors (their sum) is added when absent.
    """
    stats = dict(stats)
    if "frames_errors" not in stats:
        for key in ("frames_crc", "frames_auth", "frames_replay", "frames_format"):
            if key in stats:
                stats["frames_errors"] = stats.get("frames_errors", 0) + (stats[key] or 0)
    pairs = []
    for key in sorted(stats):
        pairs.append("%s: %s" % (json_string(key), json_value(stats[key])))
    return "%s/%s/diagnostics" % (base, id), ("{%s}" % ", ".join(pairs)).encode()


def discovery(reading, base, prefix="homeassistant", node="meterkit", version=None):
    """[(topic, payload)] Home Assistant MQTT discovery configs (publish them retained); the
    tables live in discovery.py, which the dongle loads only while it announces."""
    from .discovery import about, configs
    return list(configs(about(reading), base, prefix, node, version))


def _timestamp(reading, received):
    if reading.timestamp:
        try:
            return epoch_seconds(reading.timestamp)
        except (ValueError, IndexError):
            pass   # not an ISO time: fall back to when we received it
    return received
