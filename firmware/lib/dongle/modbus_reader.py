"""The meter task for profile `modbus`: the dongle asks RS485 meters (Eastron SDM, ABB B23, …) in
turn, with the core's polling plan (meterkit.modbus.poll), and queues their Readings in the spool
as the reader task does for meters that talk by themselves.

One request in flight: write it (hw drives the RS485 DE/RE pin around it), collect the answer
from the UART until its length is in or its time is up, wait the 3.5-character silence, next.
A pump task keeps reading the port into a small buffer, so the transaction loop never blocks.
Each meter's availability (<base>/<id>/status, online/offline) is published retained when it
changes and on every connect; the bus's counters go into the dongle's diagnostics.
"""
import asyncio

from meterkit.modbus import poll, regmap, rtu

from . import profiles, topics
from .reader import Throttle, queue, ticks_ms

try:
    from time import ticks_add, ticks_diff
except ImportError:  # CPython
    def ticks_add(a, b):
        return a + b

    def ticks_diff(a, b):
        return a - b

RX_MAX = 512       # the longest answer is 255 bytes; noise beyond this is dropped


def build_bus(meter):
    """(line, poll.Bus) from the config's meter section (profile modbus)."""
    intervals = []
    for entry in meter["intervals"].split():
        name, _, seconds = entry.partition("=")
        intervals.append((name, int(seconds)))
    meters = []
    for entry in meter["modbus"].split():
        parts = entry.split(":")
        meters.append(poll.Meter(regmap.load(parts[0]), int(parts[1]),
                                 parts[2] if len(parts) > 2 else None,
                                 tuple(intervals) or poll.DEFAULT_INTERVALS))
    line = profiles.parse_line(meter["line"] or meters[0].map.line)
    return line, poll.Bus(meters, line, meter["modbus_timeout_ms"],
                          retry_ms=meter["modbus_retry_s"] * 1000)


class ModbusReader:
    def __init__(self, port, meter, spool, stats, throttle=None, finite=False, on_reading=None):
        self.line, self.bus = build_bus(meter)
        self.port, self.spool, self.stats = port, spool, stats
        self.throttle = throttle or Throttle()
        self.finite, self.on_reading = finite, on_reading
        self.silence_ms = -(-rtu.silence_us(self.line) // 1000)
        self.wake = asyncio.Event()
        self.lock = asyncio.Lock()  # the bus: held per transaction (the setup page's test too)
        self.ended = False
        self.publisher, self.base = None, "smartmeter"
        self.status = {}            # meter id -> b"online" | b"offline"
        self.rx = bytearray()
        self._chunk = memoryview(bytearray(256))
        self._pump_task = None
        self._gone = False          # the source hung up (unix port: the simulator's TCP)

    def attach(self, publisher, base):
        """Availability goes out through the publisher (retained, also on every connect)."""
        self.publisher, self.base = publisher, base
        publisher.extras["modbus"] = self._status_messages

    def last_bytes(self):
        return b""   # "test the keys" has nothing to try on a Modbus bus

    async def run(self):
        while True:
            if self._gone and self.finite:
                self.ended = True
                self.wake.set()
                return
            now = ticks_ms()
            request = self.bus.poll(now)
            if request is None:
                await asyncio.sleep_ms(min(self.bus.wait_ms(now), 100))
                continue
            async with self.lock:
                answer = await self.transact(request)
                self._handle(self.bus.answer(request, answer, ticks_ms()))
                await asyncio.sleep_ms(self.silence_ms)

    async def transact(self, request):
        """Write request.frame, collect the answer (bytes, b"" for none); hold self.lock."""
        self.rx[:] = b""
        try:
            await self.port.write(request.frame)
        except OSError as e:        # no bus (the simulator is not up yet): a timeout, retried
            self.stats["meter_error"] = "meter source: %s" % e
            await asyncio.sleep_ms(request.timeout_ms)
            return None
        if self._pump_task is None:
            self._pump_task = asyncio.create_task(self._pump())
        deadline = ticks_add(ticks_ms(), request.timeout_ms)
        while ticks_diff(deadline, ticks_ms()) > 0:
            want = rtu.response_length(self.rx, request.function)
            if want > 0 and len(self.rx) >= want:
                break
            if want < 0:            # garbled: what comes until the line is quiet
                await asyncio.sleep_ms(self.silence_ms + 2)
                break
            await asyncio.sleep_ms(2)
        return bytes(self.rx)

    async def _pump(self):
        while True:
            try:
                n = await self.port.readinto(self._chunk)
            except OSError as e:
                self.stats["meter_error"] = "meter source: %s" % e
                n = 0
            if n:
                self.stats["meter_bytes"] += n
                if len(self.rx) + n <= RX_MAX:
                    self.rx.extend(self._chunk[:n])
                continue
            self._gone = True
            if self.finite:
                return
            await asyncio.sleep(1)
            self._gone = False
            self._pump_task = None   # the next request connects again and starts a new pump
            return

    def _handle(self, events):
        changed = []
        for kind, meter, what in events:
            if kind == "reading":
                self._queue(what)
            elif kind == "error":
                self.stats["last_error"] = what.message
            else:   # online / offline
                self.status[meter.id] = kind.encode()
                changed.append(meter.id)
        stats = self.stats
        stats.update(self.bus.diagnostics())
        meters = self.bus.meters
        stats["frames_ok"] = sum([m.stats["answers"] for m in meters])
        stats["frames_crc"] = sum([m.stats["crc"] for m in meters])
        stats["frames_format"] = sum([m.stats["format"] + m.stats["exception"] for m in meters])
        if changed and self.publisher is not None:
            asyncio.create_task(self.publisher.publish_retained(
                [m for m in self._status_messages() if m[0].split("/")[-2] in changed]))

    def _status_messages(self):
        return [(topics.availability(self.base, ident)[0], self.status[ident]) for ident in self.status]

    def _queue(self, reading):
        if queue(self, reading):
            self.wake.set()
