"""Meter profiles: the serial line each meter family speaks, and `auto`, which finds it.

A line is (baud, bits, parity, stop, inverted): parity None | 0 (even) | 1 (odd), as
machine.UART takes it; `inverted` is the meter's signal (P1 ports send inverted TTL), the board
says whether it already inverts in hardware.

AutoLine (autoline.py: the one part a running dongle keeps loaded) cycles the candidates: it
stays on one for `window_ms`; a decoded reading locks it in, and a locked line that yields no
reading for `stale_ms` starts the cycle again (the dongle was moved to another meter, or the
first lock was luck). Times are ticks_ms (they wrap on MicroPython).
"""
from .autoline import AutoLine  # noqa: F401  (where the host and the tests find it)

DSMR5 = (115200, 8, None, 1, True)
DSMR22 = (9600, 7, 0, 1, True)
MBUS_8E1 = (2400, 8, 0, 1, False)
HDLC_8N1 = (2400, 8, None, 1, False)
MODBUS_8N1 = (9600, 8, None, 1, False)   # Eastron's factory line; meter.line sets the bus's own

# name, candidate lines, the framings the decoder looks for (fewer framings: less heap)
PROFILES = (
    ("dsmr5", (DSMR5,), ("p1",)),
    ("dsmr22", (DSMR22,), ("p1",)),
    ("smarty", (DSMR5,), ("glo",)),                    # Sagemcom T210-D: P1 port, encrypted
    ("mbus_dlms", (MBUS_8E1,), ("mbus",)),
    ("hdlc_dlms", (MBUS_8E1, HDLC_8N1), ("hdlc",)),    # most 8E1, some (Aidon, Kamstrup) 8N1
    ("modbus", (MODBUS_8N1,), ()),                     # RS485 meters we ask (modbus_reader.py)
)
AUTO = (DSMR5, DSMR22, MBUS_8E1, HDLC_8N1, (115200, 8, None, 1, False), (2400, 8, 0, 1, True))
ALL_FRAMINGS = ("p1", "glo", "hdlc", "mbus")


def _find(profile):
    if profile == "auto":
        return profile, AUTO, ALL_FRAMINGS
    for entry in PROFILES:
        if entry[0] == profile:
            return entry
    raise ValueError("unknown meter profile %r" % profile)


def lines(profile):
    """The candidate lines of a profile name ('auto': all of them)."""
    return _find(profile)[1]


def framings(profile):
    return _find(profile)[2]


def first_line(profile):
    """A profile's usual line (for a board's default_profile), None if the name is unknown."""
    try:
        return lines(profile)[0]
    except ValueError:
        return None


def describe(line):
    baud, bits, parity, stop, inverted = line
    frame = "%d%s%d" % (bits, "N" if parity is None else "EO"[parity], stop)
    return "%d %s%s" % (baud, frame, " inverted" if inverted else "")


def parse_line(text):
    """'19200 8E1' -> (19200, 8, 0, 1, False); config.serial_line checked the form."""
    baud, frame = text.split()
    return int(baud), int(frame[0]), (None, 0, 1)["NEO".index(frame[1])], int(frame[2]), False
