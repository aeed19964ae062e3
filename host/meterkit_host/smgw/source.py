"""One gateway as a source of `meterkit read`: a thread that polls it politely and hands every
reading to the sinks, as sources.SerialSource does for a meter on a serial port.

A cycle: take the gateway's lock (one session at a time, across processes), ask the login guard
(at most max_logins_per_hour, counted before the login is tried), check the certificate against
its pin, log in, read every meter, log out. Then the gateway's own reading (firmware, clock) and
one Reading per meter and capture time go to the sinks. A failure is logged with what to do and
retried after a backoff (interval, 2x, 4x … backoff_max_s); nothing here ends the service.
"""
import datetime
import logging
import threading
import time
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from meterkit import VERSION
from meterkit.clock import epoch_seconds
from meterkit.smgw import FAMILIES as NAMES, Cycle, GatewayError, load
from meterkit.smgw.values import epoch_iso, gateway_reading, http_date_iso, local_fields

from .config import POLITE_S
from .guard import HostLock, State, state_path
from .session import MAX_PAGE, Http

log = logging.getLogger("meterkit.smgw")

FAMILIES = dict((name, load(name)) for name in NAMES)   # the families the dongle runs too
PROBE_ORDER = ("ppc", "emh", "theben")
DAILY_RETRY_S = 900           # daily mode: the first retry after a failure
_KINDS = {1: "electricity", 4: "heat cost allocator", 5: "cooling", 6: "heat", 7: "gas",
          8: "cold water", 9: "hot water"}


class GatewaySource:
    """`start()` runs the gateway in its own thread until `stop` (a threading.Event) is set.

    spec: a checked [[gateways]] entry; sinks: reading(source, reading, received) and
    diagnostics(device, stats), neither blocking (read's Fanout)."""

    def __init__(self, spec, sinks, stop, diagnostics_every=60):
        self.spec, self.sinks, self.stop = spec, sinks, stop
        self.name = spec["name"]
        self.diagnostics_every = diagnostics_every
        parts = urlsplit(spec["url"])
        self.where = "%s:%d" % (parts.hostname, parts.port or 443)
        self.zone = ZoneInfo(spec["timezone"])
        self.family = FAMILIES.get(spec["family"])    # None: probe on the first cycle
        self.last = {}            # meter id -> epoch of its newest reading handed on
        self.meter_counts = {}    # meter device id -> readings handed on
        self.failures = 0
        self.firmware = None
        self.started = time.monotonic()
        self.stats = {"readings": 0, "polls_ok": 0, "polls_failed": 0, "frames_auth": 0,
                      "frames_format": 0, "logins_deferred": 0, "last_error": None,
                      "gateway_error": None, "version": VERSION}
        self.thread = threading.Thread(target=self.run, name="smgw-" + self.name, daemon=True)
        self.stop_wait_s = 2 * spec["timeout_s"]   # at a stop, a cycle under way still logs out

    def start(self):
        self.thread.start()

    def run(self):
        if self.spec["mode"] == "interval" and self.spec["interval_s"] < POLITE_S:
            log.warning("%s: polling every %d s; gateways may lock the HAN login when polled more "
                        "often than every %d s (the lockout guard allows %d logins an hour)",
                        self.name, self.spec["interval_s"], POLITE_S,
                        self.spec["max_logins_per_hour"])
        due = time.time()
        next_diagnostics = time.monotonic() + self.diagnostics_every
        while not self.stop.is_set():
            wait = min(due - time.time(), next_diagnostics - time.monotonic())
            if wait > 0 and self.stop.wait(min(wait, 1.0)):
                break
            if time.monotonic() >= next_diagnostics:
                next_diagnostics = time.monotonic() + self.diagnostics_every
                self._send_diagnostics()
            if time.time() >= due:
                due = self.cycle()

    # -- one cycle -------------------------------------------------------------------------------

    def cycle(self):
        """Poll once; the epoch at which the next cycle is due."""
        started = time.time()
        try:
            with HostLock(self.spec["state_dir"], self.where, self._lock_wait()) as state:
                allowed, next_login = state.logins_allowed(self.spec["max_logins_per_hour"])
                if not allowed:
                    return self._deferred(state, next_login)
                snapshot, http = self._session(state)
        except GatewayError as e:
            return self._failed(e, started)
        except Exception:   # a bug must not end the service: log it, retry later
            log.exception("%s: the cycle failed unexpectedly", self.name)
            return self._failed(GatewayError("bug", "unexpected error (see the traceback above)"),
                                started)
        self._deliver(snapshot, http)
        return self._next_regular(started)

    def _lock_wait(self):
        return 8 * self.spec["timeout_s"]

    def _session(self, state):
        http = Http(self.spec, state)
        try:
            http.open()   # the certificate against its pin, before any credential
            if self.family is None:
                self.family = self._probe(http)
            http.use_digest(self.family.force_md5)
            http.silent_on_bad_login = self.family.silent_on_bad_login
            state.record_login()   # before the login: a login that fails counts all the same
            readings = []
            cycle = Cycle(self._family(http, self.family).cycle(
                self.spec["mode"], self.last, readings.append, int(time.time())))
            request = cycle.next()
            while request is not None:
                try:
                    http.exchange(request)
                except GatewayError as e:   # the cycle may still log out, then it is raised
                    request = cycle.next(e)
                else:
                    request = cycle.next()
        finally:
            http.close()
        readings.sort(key=lambda reading: epoch_seconds(reading.timestamp))   # (a day: newest first)
        return (cycle.result, readings), http

    def _family(self, http, family):
        return family(http.where, self.spec["user"], http.path, self.spec["gateway_id"],
                      self._note, ZoneClock(self.zone), MAX_PAGE)

    def _note(self, level, message):
        getattr(log, level)("%s: %s", self.name, message)

    def _probe(self, http):
        """The family whose endpoint answers (401 or 200) without credentials: no login spent."""
        tried = []
        for name in PROBE_ORDER:
            probe = self._family(http, FAMILIES[name]).probe()
            method, path = probe.method, probe.path
            page = http.fetch(method, path, probe.what, auth=False, data=probe.body or None,
                              headers=dict(probe.headers))
            if page.status in (200, 401):
                log.info("%s: %s %s answers %d: a %s gateway (set family = \"%s\" to skip the "
                         "probe)", self.name, method, path, page.status, name, name)
                return FAMILIES[name]
            tried.append("%s %s: %d" % (method, path, page.status))
        raise GatewayError("format", "no known gateway family answers at %s (%s); set family = "
                           "ppc, theben or emh" % (self.where, ", ".join(tried)))

    def _deferred(self, state, next_login):
        self.stats["logins_deferred"] += 1
        self.stats["last_error"] = ("lockout guard: %d logins in the last hour"
                                    % state.logins_last_hour())
        log.warning("%s: lockout guard: %d logins to %s in the last hour (max_logins_per_hour = "
                    "%d); the next login waits until %s", self.name, state.logins_last_hour(),
                    self.where, self.spec["max_logins_per_hour"], _clock(next_login, self.zone))
        return next_login

    def _failed(self, error, started):
        self.failures += 1
        self.stats["polls_failed"] += 1
        self.stats["last_error"], self.stats["gateway_error"] = error.message, error.kind
        if error.kind in ("auth", "format"):
            self.stats["frames_" + error.kind] += 1
        first = self.spec["interval_s"] if self.spec["mode"] == "interval" else DAILY_RETRY_S
        delay = min(first * 2 ** (self.failures - 1), self.spec["backoff_max_s"])
        due = started + delay
        if self.spec["mode"] == "daily":
            due = min(due, self._next_regular(started))
        log.warning("%s: %s; next try %s", self.name, error.message, _clock(due, self.zone))
        self._send_diagnostics()
        return due

    def _next_regular(self, started):
        if self.spec["mode"] == "interval":
            return started + self.spec["interval_s"]
        hour, minute = (int(part) for part in self.spec["daily_at"].split(":"))
        now = datetime.datetime.fromtimestamp(started, self.zone)
        at = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if at <= now:
            at = (now + datetime.timedelta(days=1)).replace(hour=hour, minute=minute, second=0,
                                                            microsecond=0)
        return at.timestamp()

    # -- what a cycle found -----------------------------------------------------------------------

    def _deliver(self, snapshot, http):
        from dongle.topics import device_id
        received = int(time.time())
        self.failures = 0
        firmware, meters = snapshot
        self.firmware = firmware or self.firmware
        clock = http_date_iso(http.last_date) or epoch_iso(received)
        gateway = gateway_reading(self.name, self.firmware, clock, self.family.name)
        self.sinks.reading(self.name, gateway, received)
        for reading in meters:
            device = device_id(reading)
            if device not in self.meter_counts:
                self.meter_counts[device] = 0
                log.info("%s: found meter %s (%s)", self.name, reading.meter_id, _kind(reading))
            self.meter_counts[device] += 1
            self.last[reading.meter_id] = max(self.last.get(reading.meter_id, 0),
                                              epoch_seconds(reading.timestamp))
            self.sinks.reading(self.name, reading, received)
        self.stats["readings"] += len(meters)
        self.stats["polls_ok"] += 1
        self.stats["last_error"] = self.stats["gateway_error"] = None
        log.info("%s: %d new reading(s) from %d meter(s), gateway time %s, firmware %s",
                 self.name, len(meters), len(self.meter_counts), gateway.timestamp,
                 self.firmware or "not reported")
        self._send_diagnostics()

    def diagnostics(self):
        """The gateway's counters (the dongle's diagnostics keys where they mean the same)."""
        stats = dict(self.stats)
        stats.update(frames_ok=self.stats["readings"], frames_crc=0, frames_replay=0,
                     skipped_bytes=0, uptime_s=int(time.monotonic() - self.started),
                     meters=len(self.meter_counts), firmware=self.firmware,
                     family=self.family.name if self.family else None,
                     logins_last_hour=self._logins_last_hour())
        return stats

    def _logins_last_hour(self):
        try:   # read without the lock: the file is only ever replaced whole
            return State(state_path(self.spec["state_dir"], self.where)).logins_last_hour()
        except GatewayError:
            return None

    def _send_diagnostics(self):
        gateway = self.diagnostics()
        self.sinks.diagnostics(self.name, gateway)
        for device, count in self.meter_counts.items():
            self.sinks.diagnostics(device, {
                "frames_ok": count, "last_error": gateway["last_error"], "gateway": self.name,
                "uptime_s": gateway["uptime_s"], "version": VERSION})


def _kind(reading):
    kinds = []
    for obis, _ in reading.values:
        head = obis.split("-", 1)[0]
        kind = _KINDS.get(int(head)) if head.isdigit() else None
        if kind and kind not in kinds:
            kinds.append(kind)
    return ", ".join(kinds) or "no metered quantity"


class ZoneClock:
    """The gateway's local time (PPC pages print none) in the configured zone (zoneinfo)."""

    def __init__(self, zone):
        self.zone = zone

    def iso(self, text):
        return datetime.datetime(*local_fields(text), tzinfo=self.zone).isoformat()

    def today(self, now):
        return datetime.datetime.fromtimestamp(now, self.zone).date().isoformat()



def _clock(epoch, zone):
    return datetime.datetime.fromtimestamp(epoch, zone).strftime("%Y-%m-%d %H:%M:%S %Z")
