"""Power and energy history for the live page: the last hour, 24 hours and 31 days, bounded.

    history = History(path)                         # loads what an earlier run saved
    history.add(now_s, power_w, energy_wh)          # per reading (ints; None when not sent)
    history.points("hour" | "day" | "month")        # [[epoch_s, value], ...] oldest first

hour: mean power_in (W) per 10 s, RAM only; day: mean power per 5 min; month: energy_in per
day (kWh). Each is a fixed ring of ints (array), so the heap never grows; day and month go to
one small binary file (atomic rename) whenever a 5-minute slot closes: ~288 small writes a day.
The points and the file are history_file.py, loaded only while used.
"""
from array import array

from . import lazy

EMPTY = -0x7FFFFFFF
RANGES = (("hour", 10, 360), ("day", 300, 288), ("month", 86400, 31))


def to_int(value, power=0):
    """An Exact (or None) times 10**power, rounded to a whole number."""
    if value is None:
        return None
    m, e = value.mantissa, value.exponent + power
    if e >= 0:
        return m * 10 ** e
    div = 10 ** -e
    return (m + div // 2) // div if m >= 0 else -((-m + div // 2) // div)


class Ring:
    """One value per slot of `step` seconds, the last `size` slots."""

    def __init__(self, step, size):
        self.step, self.size = step, size
        self.values = array("i", [EMPTY] * size)
        self.last = None            # the newest slot number (epoch_s // step)
        self.total = self.count = 0  # the open slot's running mean

    def _advance(self, slot):
        if self.last is not None and slot > self.last:
            for skipped in range(self.last + 1, min(slot, self.last + self.size + 1)):
                self.values[skipped % self.size] = EMPTY
        if self.last is None or slot > self.last:
            self.last, self.total, self.count = slot, 0, 0
            return True
        return False

    def mean(self, now, value):
        """Fold value into its slot's mean; True when this opened a new slot."""
        slot = now // self.step
        if self.last is not None and slot < self.last:
            return False            # the clock went back: ignore rather than rewrite history
        opened = self._advance(slot)
        self.total += value
        self.count += 1
        self.values[slot % self.size] = (self.total + self.count // 2) // self.count
        return opened

    def put(self, now, value):
        slot = now // self.step
        if self.last is not None and slot < self.last:
            return False
        opened = self._advance(slot)
        self.values[slot % self.size] = value
        return opened


class History:
    def __init__(self, path=None):
        self.path = path
        self.hour, self.day, self.month = [Ring(step, size) for _, step, size in RANGES]
        self.day_start_wh = None    # energy_in when the current day began
        self.latest_wh = None
        self.load()

    def add(self, now, power_w=None, energy_wh=None):
        if power_w is not None:
            self.hour.mean(now, power_w)
            if self.day.mean(now, power_w) and self.path:
                self.save()         # a 5-minute slot closed: keep it
        if energy_wh is not None:
            if self.day_start_wh is None:
                self.day_start_wh = energy_wh
            elif self.month.last is not None and now // 86400 > self.month.last:
                self.day_start_wh = self.latest_wh   # where the previous day's last reading left it
            self.latest_wh = energy_wh
            self.month.put(now, energy_wh - self.day_start_wh)

    def add_reading(self, reading, now):
        """power_in (W) and energy_in (Wh; tariffs summed when there is no total) of a Reading."""
        from meterkit.harmonize import harmonize
        found = dict(harmonize(reading))
        energy = found.get("energy_in")
        if energy is None and "energy_in_t1" in found and "energy_in_t2" in found:
            energy = to_int(found["energy_in_t1"], 3) + to_int(found["energy_in_t2"], 3)
        else:
            energy = to_int(energy, 3)
        self.add(now, to_int(found.get("power_in")), energy)

    # the page's points and the file: code loaded only while used (history_file.py)

    def points(self, name):
        return lazy("history_file", "points", self)(name)

    def save(self):
        lazy("history_file", "save", self)()

    def load(self):
        if self.path:
            lazy("history_file", "load", self)()
