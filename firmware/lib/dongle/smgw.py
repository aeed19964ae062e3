"""The meter task for profile `smgw`: the dongle polls a German Smart Meter Gateway's HAN interface
(PPC, Theben CONEXA, EMH CASA) with the core's families (meterkit.smgw) over smgw_link, and
queues every meter's readings in the spool, as the reader task does for a meter on the UART.

A cycle: the login guard (at most smgw.max_logins_per_hour, counted on flash before each login,
whatever fails), one kept-alive TLS connection with the certificate pinned (smgw.pin, or the
first one seen, stored in DATA/smgw.json beside the login times), the family's requests, the
connection closed (PPC logs out first). Then every `interval_s` (daily: at `daily_at`, the
gateway's own time), after a failure a backoff: interval, 2x, 4x … backoff_max_s. Nothing here
ends the task: each failure is a message in the diagnostics and on the console.

MQTT: the meters' readings go through the spool like any meter's; the gateway itself is a device
of its own, published retained: <base>/<name>/state (firmware, clock, family), /diagnostics
(polls, logins, the last error), /status (online after a good cycle, offline after a failed
one; the meters' status follow it), and its Home Assistant configs (smgw_discovery).
"""
import asyncio
import json
import time

from meterkit.smgw import Cycle, GatewayError, load
from meterkit.smgw.values import CentralEurope, epoch_iso, gateway_reading, http_date_iso

from . import topics, unload
from .reader import Throttle, queue
from .smgw_link import Link

WINDOW_S = 3600      # the login guard's window
CLOCK = CentralEurope()


def say(*words):
    print("smgw:", *words)


class Gateway:
    def __init__(self, settings, data, spool, stats, finite=False, on_reading=None):
        self.s = s = settings
        self.family = load(s["family"]) if s["family"] and s["host"] and s["user"] else None
        self.where = "%s:%d" % (s["host"], s["port"])
        self.name = s["name"]
        self.state_path = data + "/smgw.json"
        self.box, self.stats = spool, stats
        self.spool = self if s["mode"] == "daily" else spool   # where reader.queue puts
        self.throttle = Throttle()   # a meter's readings come every 15 minutes at most
        self.finite, self.on_reading = finite, on_reading
        self.wake = asyncio.Event()   # set when the spool got something
        self.ended = False
        self.publisher, self.base, self.discovery = None, "smartmeter", False
        self.last = {}            # meter id -> epoch of its newest reading handed on
        self.status = {}          # device id -> b"online" | b"offline" (the gateway, its meters)
        self.gateway = None       # the gateway's reading of the last good cycle
        self.failures = 0
        self.firmware = None
        self.clock_offset = 0     # the gateway's clock minus ours (its Date header)
        self.link = None
        self.held = []            # daily mode: (meter, epoch, record) of the meter being read
        self.counts = {"polls_ok": 0, "polls_failed": 0, "logins_deferred": 0}
        stats.update(self.counts)
        stats.update(gateway_error=None, logins_last_hour=0)

    def attach(self, publisher, base):
        """The gateway's own messages go out retained through the publisher, on every connect."""
        self.publisher, self.base = publisher, base
        self.discovery = publisher.s["ha_discovery"]
        publisher.extras["smgw"] = self._retained

    def last_bytes(self):
        return b""   # "test the keys" has nothing to try on a gateway

    def close(self):
        if self.link is not None:
            self.link.close()

    async def run(self):
        while self.family is None:   # config.py said what is missing; the web page can fix it
            self.stats["meter_error"] = "smgw: set smgw.family, smgw.host and smgw.user"
            if self.finite:
                self.ended = True
                return
            await asyncio.sleep(60)
        if self.s["mode"] == "interval" and self.s["interval_s"] < 300:
            say("polling every %d s; gateways may lock the HAN login when polled more often than "
                "every 300 s (the lockout guard allows %d logins an hour)"
                % (self.s["interval_s"], self.s["max_logins_per_hour"]))
        while True:
            wait = await self.cycle()
            if self.ended:
                self.wake.set()
                return
            await asyncio.sleep(wait)

    # -- one cycle -------------------------------------------------------------------------------

    async def cycle(self):
        """Poll once, unless the guard says no; the seconds until the next cycle."""
        state = self._state()
        now = time.time()
        logins = sorted([t for t in state.get("logins", ()) if type(t) is int
                         and now - WINDOW_S < t <= now + 60])   # (+60: a clock set back)
        self.stats["logins_last_hour"] = len(logins)
        allowed = self.s["max_logins_per_hour"]
        if len(logins) >= allowed:
            wait = logins[len(logins) - allowed] + WINDOW_S - int(now)
            self._count("logins_deferred")
            self.stats["last_error"] = "lockout guard: %d logins in the last hour" % len(logins)
            say("lockout guard: %d logins to %s in the last hour (max_logins_per_hour = %d); the "
                "next login waits %d s" % (len(logins), self.where, allowed, wait))
            self._changed()
            return max(wait, 1)
        state["logins"] = logins + [int(now)]   # before the login: a failed one counts too
        self.stats["logins_last_hour"] = len(logins) + 1
        pinned = self.s["pin"] or state.get("sha256") or ""
        self._save(state)
        link = self.link = Link(self.s["host"], self.s["port"], self.s["user"],
                                self.s["password"], pinned, self.s["timeout_s"] * 1000,
                                self.family.force_md5)
        link.silent_on_bad_login = self.family.silent_on_bad_login
        try:
            firmware = await self._session(link)
        except GatewayError as e:
            return self._failed(e)
        except MemoryError:
            raise   # the app restarts the task (App._rerun)
        except Exception as e:   # a bug must not end the task: show it, retry later
            import sys
            if hasattr(sys, "print_exception"):
                sys.print_exception(e)
            return self._failed(GatewayError("bug", "unexpected %s: %s" % (
                type(e).__name__, e)))
        finally:
            link.close()
            self.link = None
            self._spool_held()
            if not pinned and link.seen:
                self._pin(link.seen)
        self._delivered(firmware, link)
        return self._next_regular()

    async def _session(self, link):
        family = self.family(self.where, self.s["user"], "", self.s["gateway_id"], self._note,
                             CLOCK)
        cycle = Cycle(family.cycle(self.s["mode"], self.last, self._queue,
                                   lambda: self._gateway_now(link)))
        request = cycle.next()
        while request is not None:
            try:
                await link.exchange(request)
            except GatewayError as e:   # the cycle may still log out, then it is raised
                request = cycle.next(e)
            else:
                request = cycle.next()
        return cycle.result

    def _gateway_now(self, link):
        """The gateway's clock from its Date header (the dongle may have no time source)."""
        from meterkit.clock import epoch_seconds
        stamp = http_date_iso(link.date)
        if stamp is not None:
            self.clock_offset = epoch_seconds(stamp) - int(time.time())
        return int(time.time()) + self.clock_offset

    def _note(self, level, message):
        say(message)

    def _queue(self, reading):
        """A meter's reading from the cycle into the spool (reader.queue). A daily page's come
        newest first: the meter's day is held as spool records (put() below) and spooled oldest
        first, so a state topic ends on the newest."""
        from meterkit.clock import epoch_seconds
        meter, epoch = reading.meter_id, epoch_seconds(reading.timestamp)
        if self.held and self.held[0][0] != meter:
            self._spool_held()
        self._at = (meter, epoch)
        queue(self, reading)
        self.last[meter] = max(self.last.get(meter, 0), epoch)
        self.status[topics.device_id(reading)] = b"online"
        self.wake.set()

    def put(self, item):
        """reader.queue's spool in daily mode."""
        self.held.append(self._at + (item,))

    def _spool_held(self):
        held, self.held = self.held, []
        held.sort(key=lambda entry: entry[1])
        for entry in held:
            self.box.put(entry[2])

    def _delivered(self, firmware, link):
        self.failures = 0
        self.firmware = firmware or self.firmware
        clock = http_date_iso(link.date) or epoch_iso(int(time.time()) + self.clock_offset)
        self.gateway = gateway_reading(self.name, self.firmware, clock, self.family.name)
        self._count("polls_ok")
        self.stats["gateway_error"] = None
        self.status[self.name] = b"online"
        self._changed()

    def _failed(self, error):
        self.failures += 1
        self._count("polls_failed")
        self.stats["last_error"], self.stats["gateway_error"] = error.message, error.kind
        if error.kind in ("auth", "format"):
            self.stats["frames_" + error.kind] += 1
        for device in self.status:   # nothing behind it can be read now
            self.status[device] = b"offline"
        first = self.s["interval_s"] if self.s["mode"] == "interval" else 900
        delay = min(first * 2 ** min(self.failures - 1, 16), self.s["backoff_max_s"])
        if self.s["mode"] == "daily":
            delay = min(delay, self._next_regular())
        say("%s; next try in %d s" % (error.message, delay))
        if self.finite and error.kind == "unreachable":
            self.ended = True   # the simulated gateway is gone: the end of a test run
        self._changed()
        return delay

    def _next_regular(self):
        if self.s["mode"] == "interval":
            return self.s["interval_s"]
        from meterkit.clock import epoch_seconds
        now = int(time.time()) + self.clock_offset
        day = CLOCK.today(now)
        for _ in range(2):
            at = epoch_seconds(CLOCK.iso("%s %s:00" % (day, self.s["daily_at"])))
            if at > now:
                return at - now
            day = CLOCK.today(now + 86400)
        return 86400

    # -- what the gateway itself publishes -------------------------------------------------------

    def _count(self, name):
        self.counts[name] += 1
        self.stats[name] = self.counts[name]

    def diagnostics(self):
        doc = dict(self.counts)
        doc.update(readings=self.stats["readings"], last_error=self.stats["last_error"] if self.failures else None,
                   gateway_error=self.stats["gateway_error"], firmware=self.firmware,
                   family=self.family.name, logins_last_hour=self.stats["logins_last_hour"],
                   meters=len([d for d in self.status if d != self.name]),
                   uptime_s=self.stats.get("uptime_s"), version=self.stats.get("version"))
        return doc

    def _retained(self):
        """[(topic, payload)]: the gateway's state, diagnostics, configs and every status."""
        messages = [(topics.availability(self.base, device)[0], self.status[device])
                    for device in self.status]
        messages.append(topics.diagnostics(self.diagnostics(), self.base, self.name))
        if self.gateway is not None:
            messages.append(topics.raw_state(self.gateway, self.base))
            if self.discovery:
                from .smgw_discovery import gateway_configs
                try:
                    messages += gateway_configs(self.gateway, self.base, self.publisher.prefix,
                                                self.publisher.node)
                finally:
                    unload("smgw_discovery")
        return messages

    def _changed(self):
        if self.publisher is not None:
            asyncio.create_task(self.publisher.publish_retained(self._retained()))

    # -- the pin and the login times, on flash ---------------------------------------------------

    def _state(self):
        try:
            with open(self.state_path) as f:
                doc = json.loads(f.read())
            return doc if isinstance(doc, dict) else {}
        except (OSError, ValueError):
            return {}

    def _save(self, state):
        """Written whole, then renamed over the old file: a power cut leaves one of the two."""
        import os
        temp = self.state_path + ".tmp"
        with open(temp, "w") as f:
            f.write(json.dumps(state))
        (getattr(os, "replace", None) or os.rename)(temp, self.state_path)

    def _pin(self, seen):
        from meterkit.smgw.exchange import pretty
        state = self._state()
        state["sha256"] = seen
        self._save(state)
        say("first connection to %s: pinned its certificate, SHA-256 %s (in %s); compare it with "
            "the gateway's documentation" % (self.where, pretty(seen), self.state_path))
