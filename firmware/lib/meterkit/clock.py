"""Meter clock values as ISO-8601 text, computed with integers only (portable, no datetime)."""


def iso_datetime(year, month, day, hour, minute, second, offset_minutes=None):
    """'2021-07-19T15:46:35+02:00'; no offset -> naive local time (the meter did not say)."""
    text = "%04d-%02d-%02dT%02d:%02d:%02d" % (year, month, day, hour, minute, second)
    if offset_minutes is None:
        return text
    sign = "+" if offset_minutes >= 0 else "-"
    off = abs(offset_minutes)
    return text + "%s%02d:%02d" % (sign, off // 60, off % 60)


def epoch_seconds(iso):
    """Seconds since 1970 UTC for an ISO text from iso_datetime (naive text is taken as UTC)."""
    y, m, d = int(iso[0:4]), int(iso[5:7]), int(iso[8:10])
    # Howard Hinnant's days-from-civil algorithm: days since 1970-01-01
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    seconds = days * 86400 + int(iso[11:13]) * 3600 + int(iso[14:16]) * 60 + int(iso[17:19])
    rest = iso[19:]
    if rest and rest[0] in "+-":
        off = int(rest[1:3]) * 60 + int(rest[4:6])
        seconds -= off * 60 if rest[0] == "+" else -off * 60
    return seconds


def valid_date(year, month, day, hour, minute, second):
    return (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61
            and year >= 1970)
