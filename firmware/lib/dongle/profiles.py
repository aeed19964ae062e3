"""Meter profiles: the serial line each meter family speaks, and `auto`, which finds it.

A line is (baud, bits, parity, stop, inverted): parity None | 0 (even) | 1 (odd), as
machine.UART takes it; `inverted` is the meter's signal (P1 ports send inverted TTL), the board
says whether it already inverts in hardware.

AutoLine cycles the candidates: it stays on one for `window_ms`; a decoded reading locks it in,
and a locked line that yields no reading for `stale_ms` starts the cycle again (the dongle was
moved to another meter, or the first lock was luck). Times are ticks_ms (they wrap on MicroPython).
"""
try:
    from time import ticks_diff
except ImportError:  # CPython
    def ticks_diff(a, b):
        return a - b

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

WINDOW_MS = 12000     # Smarty sends every 10 s, M-Bus meters every 5 s: one frame fits in
STALE_MS = 120000


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


class AutoLine:
    """Which line to use now. The caller reports what the decoder said and applies changes.

        auto = AutoLine(lines("auto"), first=board_default_line)
        line = auto.line                          # set the UART to this
        new = auto.observe(events, now_ms)        # after each feed(); a line to switch to, or None
    """

    def __init__(self, candidates, first=None, window_ms=WINDOW_MS, stale_ms=STALE_MS):
        candidates = list(candidates)
        if first in candidates:   # the board's usual meter goes first
            candidates.remove(first)
            candidates.insert(0, first)
        self.candidates = candidates
        self.window_ms = window_ms
        self.stale_ms = stale_ms
        self.index = 0
        self.locked = len(candidates) == 1   # a fixed profile has nothing to search
        self.switches = 0
        self._since = None        # ticks when the current line started or last decoded

    @property
    def line(self):
        return self.candidates[self.index]

    def observe(self, events, now_ms):
        """events: the decoder's output since the last call. Returns a new line or None."""
        if self._since is None:
            self._since = now_ms
        if [e for e in events if not isinstance(e, Exception)]:
            self.locked = True
            self._since = now_ms
            return None
        waited = ticks_diff(now_ms, self._since)
        if len(self.candidates) == 1:
            return None
        if (self.locked and waited >= self.stale_ms) or (not self.locked and waited >= self.window_ms):
            self.locked = False
            self.index = (self.index + 1) % len(self.candidates)
            self.switches += 1
            self._since = now_ms
            return self.line
        return None


def parse_line(text):
    """'19200 8E1' -> (19200, 8, 0, 1, False); config.serial_line checked the form."""
    baud, frame = text.split()
    return int(baud), int(frame[0]), (None, 0, 1)["NEO".index(frame[1])], int(frame[2]), False
