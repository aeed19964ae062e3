"""AutoLine: which serial line to use now (profiles.py has the lines and the overview).

Apart from profiles.py because the reader needs it for as long as it runs, while the profile
tables are needed only at startup: the dongle forgets those (on the stock firmware a loaded
module's code and tables sit in the heap).
"""
try:
    from time import ticks_diff
except ImportError:  # CPython
    def ticks_diff(a, b):
        return a - b

WINDOW_MS = 12000     # Smarty sends every 10 s, M-Bus meters every 5 s: one frame fits in
STALE_MS = 120000


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
