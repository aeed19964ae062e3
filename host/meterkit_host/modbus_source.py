"""A Modbus RTU bus on a serial port: one thread asks the meters on it in turn (the core's polling
plan, meterkit.modbus.poll) and hands every Reading to the sinks, like sources.SerialSource.

One request in flight: write it, read the answer until its length is in or the time is up, wait
the 3.5-character silence, then the next. A port that is missing or unplugged is retried with
backoff; a meter that stops answering is logged, reported (diagnostics with "online": false,
which the MQTT sink turns into the meter's status topic) and probed until it is back.
"""
import logging
import termios
import threading
import time

import serial

from meterkit import VERSION
from meterkit.modbus import poll, regmap, rtu

from .sources import BACKOFF_FIRST_S, BACKOFF_MAX_S, ERROR_LOG_EVERY_S, parse_line, serial_settings

log = logging.getLogger("meterkit.read")
READ_SLICE_S = 0.005   # the port's read timeout: reads return this often while an answer is due
MODBUS_PROFILES = ("modbus",) + regmap.MODELS + tuple(alias for alias, _ in regmap.ALIASES)


def is_modbus(profile):
    return profile in MODBUS_PROFILES


def load_map(meter):
    """A meter entry's register map: its own file (`map`) or the model's built-in one."""
    if meter.get("map"):
        with open(meter["map"]) as f:
            return regmap.parse(f.read())
    return regmap.load(meter["model"])


def build_bus(spec):
    """(line tuple, poll.Bus) for a checked modbus source."""
    intervals = tuple(sorted(spec["intervals"].items())) or poll.DEFAULT_INTERVALS
    meters = []
    for entry in spec["meters"]:
        meters.append(poll.Meter(load_map(entry), entry["slave"], entry.get("id") or None, intervals))
    line = parse_line(spec["line"] or meters[0].map.line)
    return line, poll.Bus(meters, line, spec["timeout_ms"], retry_ms=spec["retry_s"] * 1000)


class ModbusSource:
    def __init__(self, spec, sinks, stop, diagnostics_every=60):
        self.name, self.port_path = spec["name"], spec["port"]
        self.sinks, self.stop, self.diagnostics_every = sinks, stop, diagnostics_every
        self.line, self.bus = build_bus(spec)
        self.silence_s = rtu.silence_us(self.line) / 1e6
        self.stats = {"readings": 0, "meter_error": None, "version": VERSION}
        self.started = time.monotonic()
        self._logged = {}   # meter id -> (message, when)
        self.thread = threading.Thread(target=self.run, name="modbus-" + self.name, daemon=True)

    def start(self):
        self.thread.start()

    def run(self):
        backoff = BACKOFF_FIRST_S
        while not self.stop.is_set():
            try:
                port = serial.Serial(self.port_path, timeout=READ_SLICE_S, **serial_settings(self.line))
            except (serial.SerialException, OSError, ValueError) as e:
                self._port_trouble("cannot open %s: %s" % (self.port_path, e), backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            backoff = BACKOFF_FIRST_S
            self.stats["meter_error"] = None
            log.info("%s: Modbus RTU on %s at %s: %s", self.name, self.port_path,
                     "%d %d%s%d" % (self.line[0], self.line[1], "N" if self.line[2] is None
                                    else "EO"[self.line[2]], self.line[3]),
                     ", ".join("%s (slave %d)" % (m.id, m.slave) for m in self.bus.meters))
            try:
                with port:
                    self._poll(port)
            except (serial.SerialException, OSError, termios.error) as e:
                if self.bus.in_flight is not None:   # the request went with the port
                    self._events(self.bus.answer(self.bus.in_flight, None, _ms()))
                self._port_trouble("lost %s: %s" % (self.port_path, e), backoff)

    def _port_trouble(self, message, backoff):
        self.stats["meter_error"] = message
        log.warning("%s: %s; retrying in %d s", self.name, message, backoff)
        self.stop.wait(backoff)

    def _poll(self, port):
        next_diagnostics = time.monotonic() + self.diagnostics_every
        while not self.stop.is_set():
            now = _ms()
            request = self.bus.poll(now)
            if request is None:
                self.stop.wait(min(self.bus.wait_ms(now), 500) / 1000)
            else:
                port.reset_input_buffer()
                port.write(request.frame)
                port.flush()
                answer = self._receive(port, request)
                self._events(self.bus.answer(request, answer, _ms()))
                time.sleep(self.silence_s)
            if time.monotonic() >= next_diagnostics:
                next_diagnostics = time.monotonic() + self.diagnostics_every
                for meter in self.bus.meters:
                    self._send_diagnostics(meter)

    def _receive(self, port, request):
        """The answer's bytes: until its stated length, the deadline, or (garbled) a silence."""
        deadline = time.monotonic() + request.timeout_ms / 1000
        buf = bytearray()
        quiet = 0.0             # how long nothing came since the last byte
        while time.monotonic() < deadline:
            want = rtu.response_length(buf, request.function)
            if want > 0 and len(buf) >= want:
                break
            chunk = port.read(want - len(buf) if want > 0 else (256 if want < 0 else 1))
            if chunk:
                buf += chunk
                quiet = 0.0
            else:
                quiet += READ_SLICE_S
                if buf and quiet >= self.silence_s:   # the frame ended (garbled or short)
                    break
        return bytes(buf)

    def _events(self, events):
        received = int(time.time())
        for kind, meter, what in events:
            if kind == "reading":
                self.stats["readings"] += 1
                self.sinks.reading(self.name, what, received)
            elif kind == "error":
                self._rejected(meter, what)
            elif kind == "online":
                log.info("%s: %s (slave %d) answers", self.name, meter.id, meter.slave)
                self._send_diagnostics(meter)
            elif kind == "offline":
                log.warning("%s: %s (slave %d) does not answer (%s); probing every %d s",
                            self.name, meter.id, meter.slave, what, self.bus.retry_ms // 1000)
                self._send_diagnostics(meter)

    def _rejected(self, meter, error):
        message, when = self._logged.get(meter.id, (None, 0))
        now = time.monotonic()
        if error.message != message or now - when >= ERROR_LOG_EVERY_S:
            log.warning("%s: %s: %s (%s)", self.name, meter.id, error.message, error.kind)
            self._logged[meter.id] = (error.message, now)

    def diagnostics(self):
        """For the shutdown summary: like SerialSource.diagnostics()."""
        stats = dict(self.stats)
        stats.update(self.bus.diagnostics())
        for key in ("crc", "auth", "replay", "format"):
            stats["frames_" + key] = sum(m.stats.get(key, 0) for m in self.bus.meters)
        stats["skipped_bytes"] = 0
        return stats

    def _send_diagnostics(self, meter):
        stats = meter.diagnostics()
        stats.update(version=VERSION, uptime_s=int(time.monotonic() - self.started),
                     slave=meter.slave, model=meter.map.model, frames_ok=meter.stats["answers"],
                     frames_crc=meter.stats["crc"], frames_format=meter.stats["format"])
        self.sinks.diagnostics(meter.id, stats)


def _ms():
    return int(time.monotonic() * 1000)
