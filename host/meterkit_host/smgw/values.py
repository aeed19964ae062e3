"""What every gateway family hands back, and the conversions they share.

    Snapshot(firmware, gateway_time, meters)   # meters: [Reading], one per meter and capture time
    GatewayError(kind, message)                # every failure, with a message a person can act on

Values stay exact: the gateway's digits go straight into meterkit.exact.Exact (mantissa + scaler),
never through float. Times become ISO-8601 text with the UTC offset, as the meter decoders write
them, so the topics and the recorder take the gateway's capture time as the reading's time.
"""
import datetime

from meterkit.dlms.pushlists import default_unit, unit_text
from meterkit.exact import Exact
from meterkit.obis import obis_text
from meterkit.reading import Reading

SOURCE = "smgw"               # Reading.source of a meter behind a gateway
GATEWAY_SOURCE = "smgw_gateway"   # ... and of the gateway's own reading (firmware, clock)
FIRMWARE_OBIS = "1-0:0.2.0"   # active firmware identifier
CLOCK_OBIS = "0-0:1.0.0"      # clock


class GatewayError(Exception):
    """A cycle that failed. kind: auth, cert_changed, tls, unreachable, timeout, http, session,
    format, busy, lockout; the message says what happened and what to do."""

    def __init__(self, kind, message):
        Exception.__init__(self, message)
        self.kind = kind
        self.message = message


class Snapshot:
    """One cycle's result: the gateway's firmware text (or None), its clock (ISO text or None) and
    the meters' readings, oldest first."""

    def __init__(self, firmware=None, gateway_time=None, meters=None):
        self.firmware = firmware
        self.gateway_time = gateway_time
        self.meters = meters if meters is not None else []


def new_reading(meter_id, iso_time):
    reading = Reading(meter_id, iso_time)
    reading.source = SOURCE
    return reading


def hex_obis(text):
    """'0100010800ff' (or '0100010800FF.meter.sm', EMH's logical names) -> '1-0:1.8.0'."""
    code = text.split(".", 1)[0]
    try:
        raw = bytes.fromhex(code)
    except ValueError:
        raw = b""
    if len(raw) != 6:
        raise ValueError("not a 12-digit hex OBIS code: %r" % text)
    return obis_text(raw)


def obis_unit(obis):
    """The unit an electricity OBIS code implies ('1-0:1.8.0' -> 'Wh'), '' when it implies none."""
    groups = obis.replace("-", " ").replace(":", " ").replace(".", " ").split()
    try:
        code = [int(g) for g in groups[:5]]
    except ValueError:
        return ""
    return default_unit(code) if len(code) == 5 else ""


def dlms_unit(enum):
    """A DLMS unit number (27 W, 30 Wh, 13 m3, ...) as text."""
    return unit_text(enum) if isinstance(enum, int) and not isinstance(enum, bool) else ""


def decimal(text):
    """A gateway's number as Exact (German pages may write a decimal comma); else ValueError."""
    if not isinstance(text, str):
        raise ValueError("not a number: %r" % (text,))
    try:
        return Exact.parse(text.strip().replace(",", "."))
    except ValueError:
        raise ValueError("not a number: %r" % text)


def scaled(mantissa_text, scaler):
    """EMH/Theben: an integer mantissa and a power of ten ('12345678', -1) -> Exact."""
    if isinstance(mantissa_text, bool) or not isinstance(mantissa_text, (str, int)):
        raise ValueError("not an integer: %r" % (mantissa_text,))
    text = str(mantissa_text).strip()
    digits = text[1:] if text[:1] in "+-" else text
    if not digits.isdigit():
        raise ValueError("not an integer: %r" % (mantissa_text,))
    if isinstance(scaler, bool) or not isinstance(scaler, int) or not -30 <= scaler <= 30:
        raise ValueError("not a scaler: %r" % (scaler,))
    return Exact(int(text), scaler)


def local_iso(text, zone):
    """'2026-05-16 00:00:01' in the gateway's time zone -> '2026-05-16T00:00:01+02:00'."""
    try:
        moment = datetime.datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise ValueError("not a time like 2026-05-16 00:00:01: %r" % text)
    return moment.replace(tzinfo=zone).isoformat()


def utc_iso(text):
    """An ISO-8601 time with an offset or Z -> the same instant as ISO text with its offset."""
    if not isinstance(text, str):
        raise ValueError("not a time: %r" % (text,))
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("not an ISO-8601 time: %r" % text)
    if moment.tzinfo is None:
        raise ValueError("an ISO-8601 time without a UTC offset: %r" % text)
    return moment.replace(microsecond=0).isoformat()


def epoch_iso(seconds):
    return datetime.datetime.fromtimestamp(int(seconds), datetime.timezone.utc).isoformat()


def readings_by_time(meter, by_time, mode, last):
    """{iso time: [(obis, Exact, unit)]} -> one Reading per capture time, oldest first. In
    interval mode only the times after `last` (epoch s), and on the first cycle only the newest:
    a poll that finds nothing new publishes nothing; daily mode hands on the whole day."""
    from meterkit.clock import epoch_seconds
    times = sorted(by_time, key=epoch_seconds)
    if mode != "daily":
        times = times[-1:] if last is None else [t for t in times if epoch_seconds(t) > last]
    readings = []
    for stamp in times:
        reading = new_reading(meter, stamp)
        for obis, value, unit in by_time[stamp]:
            reading.add(obis, value, unit)
        readings.append(reading)
    return readings
