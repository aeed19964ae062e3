"""Meters on serial ports: one thread per meter reads its port, decodes with the shared core and
hands every Reading to the sinks.

Line settings come from the firmware's profiles (dongle.profiles), so the host and the dongle
agree on what each meter speaks (DSMR 5: 115200 8N1, DSMR 2.2: 9600 7E1, DLMS: 2400 8E1 ...).
The profiles' `inverted` flag is the dongle's business: USB P1 cables invert in hardware, and a PC
UART cannot, so the host ignores it. A port that is missing or unplugged is retried with backoff;
garbage on the line is skipped and counted by the decoder; nothing here stops the service.
"""
import logging
import threading
import time

import serial

from dongle import profiles
from meterkit import VERSION
from meterkit.errors import DecodeError
from meterkit.stream import COUNTERS, StreamDecoder

log = logging.getLogger("meterkit.read")

# meter models people know -> the firmware profile that reads them
ALIASES = (("e450", "hdlc_dlms"), ("e360", "hdlc_dlms"), ("am550", "hdlc_dlms"), ("evn", "mbus_dlms"))
PROFILE_NAMES = (("auto",) + tuple(entry[0] for entry in profiles.PROFILES)
                 + tuple(alias for alias, _ in ALIASES))
BACKOFF_FIRST_S = 1
BACKOFF_MAX_S = 30
READ_TIMEOUT_S = 0.5
ERROR_LOG_EVERY_S = 60   # the same rejection is logged at most this often


def firmware_profile(name):
    for alias, profile in ALIASES:
        if alias == name:
            return profile
    return name


def needs_key(name):
    return firmware_profile(name) == "smarty"


def parse_line(text):
    """'2400 8E1' -> (2400, 8, 0, 1, False), the firmware's line tuple; ValueError says why."""
    parts = text.split()
    frame = parts[1].upper() if len(parts) == 2 else ""
    if len(frame) != 3 or not parts[0].isdigit() or frame[0] not in "78" or frame[1] not in "NEO" \
            or frame[2] not in "12":
        raise ValueError("must look like '2400 8E1': baud, then data bits 7|8, parity N|E|O, "
                         "stop bits 1|2")
    parity = (None, 0, 1)["NEO".index(frame[1])]
    return int(parts[0]), int(frame[0]), parity, int(frame[2]), False


def candidate_lines(profile, line=""):
    """The lines to try, in order; the same UART settings once (inversion does not count here)."""
    if line:
        return [parse_line(line)]
    out = []
    for baud, bits, parity, stop, _ in profiles.lines(firmware_profile(profile)):
        if (baud, bits, parity, stop, False) not in out:
            out.append((baud, bits, parity, stop, False))
    return out


def serial_settings(line):
    baud, bits, parity, stop, _ = line
    return {"baudrate": baud, "bytesize": bits, "stopbits": stop,
            "parity": serial.PARITY_NONE if parity is None else "EO"[parity]}


class SerialSource:
    """One meter: `start()` runs it in its own thread until `stop` (a threading.Event) is set.

    spec: a checked config source (name, port, profile, key, auth_key, line).
    sinks: an object with reading(source_name, reading, received) and diagnostics(device, stats);
    neither may block (sinks queue).
    """

    def __init__(self, spec, sinks, stop, diagnostics_every=60):
        self.name, self.port_path = spec["name"], spec["port"]
        self.sinks, self.stop, self.diagnostics_every = sinks, stop, diagnostics_every
        self.key = bytes.fromhex(spec["key"]) if spec["key"] else None
        self.auth_key = bytes.fromhex(spec["auth_key"]) if spec["auth_key"] else None
        self.framings = profiles.framings(firmware_profile(spec["profile"]))
        self.auto = profiles.AutoLine(candidate_lines(spec["profile"], spec["line"]))
        self.decoder = self._new_decoder()
        self.device = None        # the meter's id as topics use it, once a reading named it
        self.stats = {"readings": 0, "meter_bytes": 0, "skipped_bytes": 0, "line_switches": 0,
                      "last_error": None, "meter_error": None, "version": VERSION}
        self.started = time.monotonic()
        self._logged = (None, 0)  # (message, when) of the last rejection logged
        self._muted = 0           # rejections not logged since
        self.thread = threading.Thread(target=self.run, name="source-" + self.name, daemon=True)

    def _new_decoder(self):
        return StreamDecoder(self.key, self.auth_key, framings=self.framings)

    def start(self):
        self.thread.start()

    def run(self):
        backoff = BACKOFF_FIRST_S
        next_diagnostics = time.monotonic() + self.diagnostics_every
        while not self.stop.is_set():
            try:
                port = serial.Serial(self.port_path, timeout=READ_TIMEOUT_S,
                                     **serial_settings(self.auto.line))
            except (serial.SerialException, OSError, ValueError) as e:
                self._port_trouble("cannot open %s: %s" % (self.port_path, e), backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            backoff = BACKOFF_FIRST_S
            self.stats["meter_error"] = None
            log.info("%s: reading %s at %s", self.name, self.port_path, profiles.describe(self.auto.line))
            try:
                with port:
                    next_diagnostics = self._read(port, next_diagnostics)
            except (serial.SerialException, OSError) as e:
                self._port_trouble("lost %s: %s" % (self.port_path, e), backoff)

    def _port_trouble(self, message, backoff):
        self.stats["meter_error"] = message
        log.warning("%s: %s; retrying in %d s", self.name, message, backoff)
        self.stop.wait(backoff)

    def _read(self, port, next_diagnostics):
        while not self.stop.is_set():
            data = port.read(1)
            events = []
            if data:
                data += port.read(port.in_waiting)
                self.stats["meter_bytes"] += len(data)
                events = self._decode(data)
            new_line = self.auto.observe(events, _ticks_ms())
            if new_line is not None:
                log.info("%s: no meter frames yet, trying %s", self.name, profiles.describe(new_line))
                self.stats["line_switches"] = self.auto.switches
                port.apply_settings(serial_settings(new_line))
            if time.monotonic() >= next_diagnostics:
                next_diagnostics = time.monotonic() + self.diagnostics_every
                self._send_diagnostics()
        return next_diagnostics

    def _decode(self, data):
        try:
            events = self.decoder.feed(data)
        except Exception:   # a bug in the core must not end the service: log it, start afresh
            log.exception("%s: the decoder failed on %d bytes; restarting it", self.name, len(data))
            self.decoder = self._new_decoder()
            return []
        self.stats["skipped_bytes"] = self.decoder.skipped
        received = int(time.time())
        for event in events:
            if isinstance(event, DecodeError):
                self._rejected(event)
                continue
            self.stats["readings"] += 1
            if self.device is None:
                from dongle.topics import device_id
                self.device = device_id(event)
                log.info("%s: first reading from meter %s", self.name, self.device)
                self._send_diagnostics()
            log.debug("%s: reading of %s, %d values", self.name, event.timestamp, len(event.values))
            self.sinks.reading(self.name, event, received)
        return events

    def _rejected(self, error):
        """Log a rejected frame; the same message again only after ERROR_LOG_EVERY_S."""
        self.stats["last_error"] = error.message
        message, when = self._logged
        now = time.monotonic()
        if error.message == message and now - when < ERROR_LOG_EVERY_S:
            self._muted += 1
            return
        muted = " (%d more rejected frames since the last message)" % self._muted if self._muted else ""
        log.warning("%s: frame rejected (%s): %s%s", self.name, error.kind, error.message, muted)
        self._logged, self._muted = (error.message, now), 0

    def diagnostics(self):
        """The firmware's diagnostics counters for this meter (dongle.topics.diagnostics keys)."""
        stats = dict(self.stats)
        for name in COUNTERS:
            stats["frames_" + name] = self.decoder.counts[name]
        stats["uptime_s"] = int(time.monotonic() - self.started)
        return stats

    def _send_diagnostics(self):
        if self.device is not None:
            self.sinks.diagnostics(self.device, self.diagnostics())


def _ticks_ms():
    return int(time.monotonic() * 1000)
