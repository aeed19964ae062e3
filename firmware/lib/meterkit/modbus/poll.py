"""The polling plan: several meters (slave ids) on one bus, each quantity at its own interval,
one request in flight at a time, a meter that stops answering reported and retried without
holding up the others. Sans-I/O: the caller owns the port and the clock.

    bus = Bus([Meter(regmap.load("sdm630"), 1), Meter(regmap.load("sdm120"), 2)])
    while True:
        request = bus.poll(now_ms)          # None: nothing due for bus.wait_ms(now_ms) ms
        write request.frame; read the answer (request.length bytes) until request.timeout_ms
        for event in bus.answer(request, answer_bytes_or_None, now_ms):
            ("reading", meter, Reading) | ("online", meter, None) | ("offline", meter, why)
            | ("error", meter, DecodeError)     # counted in meter.stats, never raised

Each register gets the interval of its name's longest matching key (`voltage` covers voltage_l1;
`power_factor` beats `power`); registers of one interval are read in contiguous runs within the
model's limit (regmap.blocks). When a meter's blocks come due they are read one after the other
and make one Reading; then the next meter with something due has its turn (round robin).

A meter whose answers stop (timeouts, or only garbage) for DEAD_AFTER requests in a row is
offline: its blocks are dropped from the rounds and one probe goes out every retry_ms; when it
answers it is online again and everything is read at once. An exception answer (illegal address:
the wrong model configured) is counted and named but the meter stays online.
"""
from ..errors import DecodeError
from ..reading import Reading
from . import regmap, rtu

try:
    from time import ticks_add, ticks_diff
except ImportError:  # CPython: plain monotonic milliseconds
    def ticks_add(a, b):
        return a + b

    def ticks_diff(a, b):
        return a - b

# the founding system's intervals, in seconds (voltages 10 s, currents 5 s, energies 300 s, …)
DEFAULT_INTERVALS = (("voltage", 10), ("current", 5), ("power", 5), ("power_factor", 10),
                     ("frequency", 10), ("energy", 300), ("reactive_energy", 300))
DEFAULT_S = 60           # names no key matches
DEAD_AFTER = 3           # failed requests in a row: offline
RETRY_MS = 30000         # an offline meter is probed this often
TIMEOUT_MS = 300         # the meter's turnaround; the answer's time on the wire comes on top
STATS = ("requests", "answers") + rtu.KINDS


def interval_for(name, intervals, default=DEFAULT_S):
    """Seconds for a register name: the longest key that is the name or a prefix of it + '_'."""
    name = name.split("/")[0]
    best, found = -1, default
    for key, seconds in intervals:
        if len(key) > best and (name == key or name.startswith(key + "_")):
            best, found = len(key), seconds
    return found


class Block:
    __slots__ = ("address", "count", "registers", "interval_ms", "due")

    def __init__(self, address, count, registers, interval_ms):
        self.address, self.count, self.registers = address, count, registers
        self.interval_ms, self.due = interval_ms, None


class Meter:
    """One slave: its map, its blocks, whether it answers, its counters."""

    def __init__(self, map, slave, meter_id=None, intervals=DEFAULT_INTERVALS, default_s=DEFAULT_S):
        if not 1 <= slave <= 247:
            raise ValueError("slave id must be 1..247")
        self.map, self.slave = map, slave
        self.id = meter_id or "%s-%d" % (map.model.lower(), slave)
        groups = {}
        for reg in map.registers:
            seconds = interval_for(reg.name, intervals, default_s)
            groups.setdefault(seconds, []).append(reg)
        self.blocks = []
        for seconds in sorted(groups):
            for address, count, regs in regmap.blocks(groups[seconds], map.max_registers):
                self.blocks.append(Block(address, count, regs, seconds * 1000))
        self.online = None        # None until it first answers or fails
        self.failures = 0         # failed requests in a row
        self.retry_at = None      # while offline: when the next probe goes
        self.stats = dict((key, 0) for key in STATS)
        self.last_error = None

    def diagnostics(self):
        stats = dict(self.stats)
        stats["online"] = self.online
        stats["last_error"] = self.last_error
        return stats


class Request:
    __slots__ = ("meter", "block", "frame", "function", "length", "timeout_ms")

    def __init__(self, meter, block, line, timeout_ms):
        self.meter, self.block = meter, block
        self.function = meter.map.function
        self.frame = rtu.read_request(meter.slave, self.function, block.address, block.count)
        self.length = 5 + 2 * block.count
        self.timeout_ms = timeout_ms + rtu.transfer_ms(line, self.length + len(self.frame))


class Bus:
    def __init__(self, meters, line=(9600, 8, None, 1, False), timeout_ms=TIMEOUT_MS,
                 dead_after=DEAD_AFTER, retry_ms=RETRY_MS):
        ids = [meter.id for meter in meters]
        slaves = [meter.slave for meter in meters]
        for i in range(len(meters)):
            if ids[i] in ids[:i] or slaves[i] in slaves[:i]:
                raise ValueError("meter %s: slave id and name must differ on one bus" % ids[i])
        self.meters, self.line = meters, line
        self.timeout_ms, self.dead_after, self.retry_ms = timeout_ms, dead_after, retry_ms
        self.turn = 0
        self.round = None          # (meter, [blocks still to read], Reading)
        self.in_flight = None
        self.started = False

    def _start(self, now):
        for meter in self.meters:
            for block in meter.blocks:
                block.due = now
        self.started = True

    def poll(self, now):
        """The next request, or None when nothing is due. Never a second one before answer()."""
        if self.in_flight is not None:
            raise RuntimeError("a request is in flight: answer() it first")
        if not self.started:
            self._start(now)
        if self.round is None:
            self.round = self._next_round(now)
            if self.round is None:
                return None
        meter, left, _ = self.round
        self.in_flight = Request(meter, left[0], self.line, self.timeout_ms)
        meter.stats["requests"] += 1
        return self.in_flight

    def _next_round(self, now):
        count = len(self.meters)
        for step in range(count):
            meter = self.meters[(self.turn + step) % count]
            if meter.online is False:
                if ticks_diff(now, meter.retry_at) < 0:
                    continue
                meter.retry_at = ticks_add(now, self.retry_ms)
                due = [meter.blocks[0]]          # one probe
            else:
                due = [b for b in meter.blocks if ticks_diff(now, b.due) >= 0]
                if not due:
                    continue
                for block in due:                # the next time, whatever this one brings
                    block.due = ticks_add(block.due, block.interval_ms)
                    if ticks_diff(block.due, now) <= 0:   # fell behind: no burst to catch up
                        block.due = ticks_add(now, block.interval_ms)
            self.turn = (self.turn + step + 1) % count
            reading = Reading(meter.id)
            reading.source = "modbus"
            return meter, due, reading
        return None

    def wait_ms(self, now):
        """How long until something is due (0: now)."""
        if not self.started or self.round is not None:
            return 0
        wait = None
        for meter in self.meters:
            if meter.online is False:
                times = [meter.retry_at]
            else:
                times = [block.due for block in meter.blocks]
            for at in times:
                left = ticks_diff(at, now)
                if wait is None or left < wait:
                    wait = left
        return max(0, wait if wait is not None else 1000)

    def answer(self, request, frame, now):
        """What the answer (bytes, None or b"" for none at all) means: a list of events."""
        if request is None or request is not self.in_flight:
            raise RuntimeError("not the request in flight")
        self.in_flight = None
        meter, left, reading = self.round
        block = left.pop(0)
        events = []
        try:
            if not frame:
                raise rtu.Timeout("%s (slave %d): no answer within %d ms"
                                  % (meter.id, meter.slave, request.timeout_ms))
            data = rtu.parse_response(frame, meter.slave, request.function, block.count)
        except DecodeError as error:
            meter.stats[error.kind] += 1
            meter.last_error = error.message
            events.append(("error", meter, error))
            if error.kind != "exception":
                meter.failures += 1
                if meter.online is not False and meter.failures >= self.dead_after:
                    meter.online = False
                    meter.retry_at = ticks_add(now, self.retry_ms)
                    events.append(("offline", meter, error.message))
                if meter.online is False or error.kind == "timeout":
                    while left:   # no use asking it the rest now: next time again
                        left.pop()
        else:
            meter.stats["answers"] += 1
            meter.failures = 0
            if meter.online is not True:
                if meter.online is False:          # back: read everything now
                    for other in meter.blocks:
                        other.due = now
                meter.online = True
                events.append(("online", meter, None))
            self._values(meter, block, data, reading)
        if not left:
            self.round = None
            if reading.values:
                events.append(("reading", meter, reading))
        return events

    @staticmethod
    def _values(meter, block, data, reading):
        words, missing = meter.map.words, meter.map.missing
        for reg in block.registers:
            found = regmap.value(reg, data, 2 * (reg.address - block.address), words, missing)
            if found is None:
                reading.warnings.append("%s: no value (NaN, infinity or not available)" % reg.name)
            regmap.add_values(reading, reg, found)

    def diagnostics(self):
        """Bus-wide counters (sums over the meters) and how many are on- and offline."""
        stats = dict(("modbus_" + key, 0) for key in STATS)
        for meter in self.meters:
            for key in STATS:
                stats["modbus_" + key] += meter.stats[key]
        stats["meters_online"] = len([m for m in self.meters if m.online])
        stats["meters_offline"] = len([m for m in self.meters if m.online is False])
        return stats
