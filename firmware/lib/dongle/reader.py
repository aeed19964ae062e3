"""The meter reader task: UART bytes -> StreamDecoder -> spool records, as fast as they come.

It never waits on the network: a reading goes into the spool (RAM, spilling to flash) and the
publisher is woken. With profile `auto` it steers the line settings through profiles.AutoLine.
"""
import asyncio
import time

from meterkit.reading import Reading
from meterkit.stream import FRAMINGS, StreamDecoder

from . import record

RAW_TAIL = 2048   # the last meter bytes, for "test the keys": always holds a whole frame of <= 1 KB
CHUNK = 512       # read from the meter at most this much at a time, into one reused buffer

try:
    from time import ticks_ms
except ImportError:  # CPython
    def ticks_ms():
        return int(time.monotonic() * 1000)


def now_s():
    return int(time.time())


class Throttle:
    """The publish.min_interval / publish.on_change options: which readings are worth queueing."""

    def __init__(self, min_interval=0, on_change=False):
        self.min_interval = min_interval
        self.on_change = on_change
        self._last_time = None
        self._last_values = None

    def admit(self, reading, now):
        if self.min_interval and self._last_time is not None \
                and now - self._last_time < self.min_interval:
            return False
        if self.on_change:
            values = _signature(reading)
            if values == self._last_values:
                return False
            self._last_values = values
        self._last_time = now
        return True


def _signature(reading):
    """The reading's values without its clock: what 'changed' compares."""
    return [(code, str(v.value), v.unit) for code, v in reading.values
            if not code.startswith("0-0:1.0.0")]


def queue(reader, reading):
    """A reading into the reader's spool as its exact record, throttled and counted (the meter
    readers share it: reader.throttle, spool, stats and on_reading). True if it went in."""
    now = now_s()
    if not reader.throttle.admit(reading, now):
        reader.stats["throttled"] += 1
        return False
    try:
        item = record.encode(reading, now)
        reader.spool.put(item)
    except ValueError as e:   # bigger than a spool item may be: say so, keep going
        reader.stats["last_error"] = "reading not queued: %s" % e
        reader.stats["dropped_oversize"] += 1
        return False
    reader.stats["readings"] += 1
    if reader.on_reading:
        reader.on_reading(reading, item)
    return True


class Reader:
    def __init__(self, port, auto, spool, stats, key=None, auth_key=None, framings=None,
                 throttle=None, finite=False, on_reading=None):
        self.port = port
        self.auto = auto
        self.spool = spool
        self.stats = stats
        self.decoder = StreamDecoder(key, auth_key, framings=framings or FRAMINGS)
        self.throttle = throttle or Throttle()
        self.finite = finite          # a capture or a test: stop at the end of the input
        self.on_reading = on_reading  # callback(reading, its spool record): status page, console
        self.wake = asyncio.Event()   # set when the spool got something
        self.ended = False
        self._tail = memoryview(bytearray(RAW_TAIL))
        self._tail_size = 0
        self._chunk = memoryview(bytearray(CHUNK))

    async def run(self):
        while True:
            try:
                n = await self.port.readinto(self._chunk)
            except OSError as e:     # the simulator is not up yet, or the line went away
                self.stats["meter_error"] = "meter source: %s" % e
                n = 0
            self._take(n)   # the readings live in that call's frame, not in this coroutine's
            if not n:
                if self.finite:
                    self.ended = True
                    self.wake.set()
                    return
                await asyncio.sleep(1)

    def _take(self, n):
        """Decode the n bytes just read (0: the source ended). A plain call on purpose: a
        coroutine's frame lives in the heap and keeps what its stack slots last held."""
        if n:
            data = self._chunk[:n]
            self.stats["meter_bytes"] += n
            self._keep(data)
            self._handle(self.decoder.feed(data))
        else:
            self._handle(self.decoder.flush())

    def _keep(self, data):
        """Shift data into the fixed tail buffer (no allocation per chunk)."""
        tail, n = self._tail, min(len(data), RAW_TAIL)
        tail[:RAW_TAIL - n] = tail[n:]
        tail[RAW_TAIL - n:] = data if n == len(data) else data[len(data) - n:]
        self._tail_size = min(RAW_TAIL, self._tail_size + n)

    def last_bytes(self):
        """The last RAW_TAIL bytes from the meter (fewer at the start)."""
        return bytes(self._tail[RAW_TAIL - self._tail_size:])

    def _handle(self, events):
        for event in events:
            if isinstance(event, Reading):
                self._queue(event)
        counts = self.decoder.counts
        for name in counts:
            self.stats["frames_" + name] = counts[name]
        self.stats["skipped_bytes"] = self.decoder.skipped
        if self.decoder.last_error:
            self.stats["last_error"] = self.decoder.last_error
        line = self.auto.observe(events, ticks_ms())
        if line is not None:
            self.port.set_line(line)
            self.stats["line_switches"] = self.auto.switches
        self.stats["line_locked"] = self.auto.locked
        if self.decoder.memory_short:   # a frame went for want of heap: the app makes room
            self.decoder.memory_short = 0
            raise MemoryError("no heap to decode a frame")

    def _queue(self, reading):
        if queue(self, reading):
            self.wake.set()
