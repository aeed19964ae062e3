"""The conversions every gateway family shares, and one Reading per meter and capture time.

Values stay exact: the gateway's digits go straight into Exact (mantissa + scaler), never through
float. Times become ISO-8601 text with the UTC offset, as the meter decoders write them, so the
topics and the recorder take the gateway's capture time as the reading's time.
"""
from binascii import unhexlify

from meterkit.clock import epoch_seconds, valid_date
from meterkit.exact import Exact
from meterkit.obis import obis_text
from meterkit.reading import Reading

from . import GatewayError

SOURCE = "smgw"                   # Reading.source of a meter behind a gateway
GATEWAY_SOURCE = "smgw_gateway"   # ... and of the gateway's own reading (firmware, clock)
FIRMWARE_OBIS = "1-0:0.2.0"       # active firmware identifier
CLOCK_OBIS = "0-0:1.0.0"          # clock
FAMILY_OBIS = "smgw_family"       # which family answered
_MONTHS = "JanFebMarAprMayJunJulAugSepOctNovDec"


def hex_obis(text):
    """'0100010800ff' (or '0100010800FF.meter.sm', EMH's logical names) -> '1-0:1.8.0'."""
    code = text.split(".", 1)[0]
    try:
        raw = unhexlify(code) if len(code) == 12 else b""
    except ValueError:
        raw = b""
    if len(raw) != 6:
        raise ValueError("not a 12-digit hex OBIS code: %r" % text)
    return obis_text(raw)


def obis_unit(obis):
    """The unit an electricity OBIS code implies ('1-0:1.8.0' -> 'Wh'), '' when it implies none."""
    from meterkit.dlms.pushlists import default_unit
    groups = obis.replace("-", " ").replace(":", " ").replace(".", " ").split()
    if len(groups) < 5 or not all(g.isdigit() for g in groups[:5]):
        return ""
    return default_unit([int(g) for g in groups[:5]])


def dlms_unit(enum):
    """A DLMS unit number (27 W, 30 Wh, 13 m3, ...) as text."""
    from meterkit.dlms.pushlists import unit_text
    return unit_text(enum) if type(enum) is int else ""


def decimal(text):
    """A gateway's number as Exact (German pages may write a decimal comma); else ValueError."""
    if not isinstance(text, str):
        raise ValueError("not a number: %r" % (text,))
    try:
        return Exact.parse(text.strip().replace(",", "."))
    except ValueError:
        raise ValueError("not a number: %r" % text)


def scaled(mantissa, scaler):
    """EMH/Theben: an integer mantissa and a power of ten ('12345678', -1) -> Exact."""
    if type(mantissa) is not int and not isinstance(mantissa, str):
        raise ValueError("not an integer: %r" % (mantissa,))
    text = str(mantissa).strip()
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not digits.isdigit():
        raise ValueError("not an integer: %r" % (mantissa,))
    if type(scaler) is not int or not -30 <= scaler <= 30:
        raise ValueError("not a scaler: %r" % (scaler,))
    return Exact(int(text), scaler)


def _fields(text, pattern):
    """The numbers of text laid out as pattern ('dddd-dd-dd'), or None. 'd' is a digit."""
    if len(text) != len(pattern):
        return None
    numbers, digits = [], ""
    for ch, want in zip(text, pattern):
        if want == "d":
            if not "0" <= ch <= "9":
                return None
            digits += ch
        elif ch != want:
            return None
        else:
            numbers.append(int(digits))
            digits = ""
    return numbers + [int(digits)]


def _valid(moment):
    """A real date and time (valid_date lets 31 days pass in every month)."""
    year, month, day = moment[0], moment[1], moment[2]
    if not valid_date(*moment):
        return False
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return day <= 28 + leap
    return day <= (30 if month in (4, 6, 9, 11) else 31)


def utc_iso(text):
    """An ISO-8601 time with an offset or Z ('2026-05-15T22:00:00Z', fractions dropped) -> the
    same instant as '2026-05-15T22:00:00+00:00'; ValueError otherwise."""
    if not isinstance(text, str):
        raise ValueError("not a time: %r" % (text,))
    value = text.strip()
    if value[-1:] in ("Z", "z"):
        value = value[:-1] + "+00:00"
    moment = _fields(value[:19].replace(" ", "T"), "dddd-dd-ddTdd:dd:dd")
    rest = value[19:]
    if rest[:1] == ".":   # a fraction of a second
        end = 1
        while end < len(rest) and "0" <= rest[end] <= "9":
            end += 1
        rest = rest[end:]
    offset = _fields(rest[1:], "dd:dd") if rest[:1] in ("+", "-") else None
    if moment is None or not _valid(moment):
        raise ValueError("not an ISO-8601 time: %r" % text)
    if offset is None or offset[0] > 23 or offset[1] > 59:
        raise ValueError("an ISO-8601 time without a UTC offset: %r" % text)
    return value[:10] + "T" + value[11:19] + rest


def local_fields(text):
    """'2026-05-16 00:00:01' (a PPC page's local time) -> [2026, 5, 16, 0, 0, 1], or ValueError."""
    moment = _fields(text.strip(), "dddd-dd-dd dd:dd:dd")
    if moment is None or not _valid(moment):
        raise ValueError("not a time like 2026-05-16 00:00:01: %r" % text)
    return moment


def http_date_iso(header):
    """The gateway's clock from an HTTP Date header ('Sat, 16 May 2026 00:00:01 GMT') as ISO
    text in UTC; None when there is none or it is not one."""
    parts = header.split() if isinstance(header, str) else ()
    month = _MONTHS.find(parts[2]) if len(parts) == 6 and len(parts[2]) == 3 else -1
    if month < 0 or month % 3 or parts[5] != "GMT":
        return None
    clock = _fields(parts[4], "dd:dd:dd")
    if clock is None or not parts[1].isdigit() or not parts[3].isdigit():
        return None
    moment = [int(parts[3]), month // 3 + 1, int(parts[1])] + clock
    if not _valid(moment):
        return None
    return "%04d-%02d-%02dT%02d:%02d:%02d+00:00" % tuple(moment)


class CentralEurope:
    """The gateways' local time, as German gateways keep it: CET, and CEST (+02:00) from the
    last Sunday of March to the last Sunday of October, 01:00 UTC (the EU rule). A time of the
    autumn's repeated hour is taken as the first (summer) one, as zoneinfo does (fold 0)."""

    def iso(self, text):
        """'2026-05-16 00:00:01' -> '2026-05-16T00:00:01+02:00'; ValueError if not a time."""
        local = local_fields(text)
        epoch = epoch_seconds("%04d-%02d-%02dT%02d:%02d:%02d" % tuple(local)) - 7200
        summer = _last_sunday(local[0], 3) <= epoch < _last_sunday(local[0], 10)
        return "%04d-%02d-%02dT%02d:%02d:%02d+0%d:00" % tuple(local + [2 if summer else 1])

    def today(self, now):
        """The local date at epoch `now` as 'YYYY-MM-DD'."""
        year = int(civil_date(now)[:4])
        summer = _last_sunday(year, 3) <= now < _last_sunday(year, 10)
        return civil_date(now + (7200 if summer else 3600))


def _last_sunday(year, month):
    """The epoch of 01:00 UTC on the last Sunday of a 31-day month."""
    epoch = epoch_seconds("%04d-%02d-31T01:00:00" % (year, month))
    weekday = (epoch // 86400 + 3) % 7   # 1970-01-01 was a Thursday (Monday: 0)
    return epoch - (weekday + 1) % 7 * 86400


def civil_date(epoch):
    """Epoch seconds -> 'YYYY-MM-DD' (UTC), with integers only (Howard Hinnant's algorithm)."""
    days = epoch // 86400 + 719468
    era = days // 146097
    doe = days - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return "%04d-%02d-%02d" % (yoe + era * 400 + (month <= 2), month, day)


def epoch_iso(epoch):
    """Epoch seconds -> '2026-05-16T00:00:01+00:00'."""
    return "%sT%02d:%02d:%02d+00:00" % (civil_date(epoch), epoch // 3600 % 24, epoch // 60 % 60,
                                        epoch % 60)


def new_reading(meter_id, iso_time, source=SOURCE):
    reading = Reading(meter_id, iso_time)
    reading.source = source
    return reading


def gateway_reading(name, firmware, clock, family):
    """The gateway's own reading: its firmware text, its clock (ISO text) and its family."""
    reading = new_reading(name, clock, GATEWAY_SOURCE)
    reading.add(FIRMWARE_OBIS, firmware)
    reading.add(CLOCK_OBIS, clock)
    reading.add(FAMILY_OBIS, family)
    return reading


class Batch:
    """One meter's values of a cycle, grouped by capture time: add(stamp, obis, value, unit),
    then readings(). In interval mode only the times after `last` (epoch s) are kept, and on the
    first cycle (no `last`) only the newest: a poll that finds nothing new hands on nothing;
    daily mode keeps the whole day. What is dropped is dropped as it comes (a long page)."""

    def __init__(self, meter, mode, last):
        self.meter, self.daily, self.last = meter, mode == "daily", last
        self.groups = {}   # capture time text -> [epoch, (obis, Exact, unit), ...]

    def add(self, stamp, obis, value, unit):
        group = self.groups.get(stamp)
        if group is None:
            epoch = epoch_seconds(stamp)
            if not self.daily:
                if self.last is not None and epoch <= self.last:
                    return
                if self.last is None:   # only the newest time
                    if [g for g in self.groups.values() if g[0] >= epoch]:
                        return
                    self.groups = {}
            group = self.groups[stamp] = [epoch]
        group.append((obis, value, unit))

    def readings(self):
        """One Reading per capture time, oldest first; each group leaves the batch as it goes."""
        while self.groups:
            stamp = None
            for key in self.groups:
                if stamp is None or self.groups[key][0] < self.groups[stamp][0]:
                    stamp = key
            group = self.groups.pop(stamp)
            reading = new_reading(self.meter, stamp)
            for i in range(1, len(group)):
                obis, value, unit = group[i]
                reading.add(obis, value, unit)
            group = None
            yield reading


def format_error(what, error):
    """A family's message for an answer it does not understand."""
    return GatewayError("format", "%s (%s: %s)" % (what, type(error).__name__, error))
