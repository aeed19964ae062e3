"""The dongle program: wiring of independent asyncio tasks.

    reader        meter UART -> StreamDecoder -> spool          (never waits on the network)
    publisher     spool -> MQTT, QoS 1, reconnect with backoff  (publisher.py)
    wifi          keep the station connected                    (a no-op on the unix port)
    housekeeping  watchdog, gc, diagnostics every N s
    web           HTTP server + JSON API, setup portal, history  (web/, portal.py, history.py)

Unix port: `micropython firmware/main.py DATA_DIR [--exit-at-end] [--verbose]`; DATA_DIR holds
config.json and the spool. --exit-at-end stops once the meter source has ended and every reading
is published (tests, captures).
"""
import asyncio
import gc
import json
import sys

from . import BOOT, lazy
from .reader import ticks_ms

VERSION = "0.1.0"
WATCHDOG_MS = 30000
# Collect after every 1/GC_SHARE of the heap allocated instead of only when the heap is full:
# freed blocks are reused lowest first, so short-lived objects keep landing in the same few holes
# and long-lived ones do not end up scattered across the whole heap. A collection costs time in
# proportion to the heap, so a share of it keeps that cost the same whatever the heap: decoding
# a DSMR5 telegram allocates ~18 KB, 2 KB of a 64 KB heap, so ~9 collections a telegram, a few
# ms a second on the ESP32. A fixed 8 KB lowered the smallest heap by 16 KB; a 32nd took the
# 32-bit frozen build's from 64 to 60 KB (tools/bench_runtime.py --smallest).
GC_SHARE = 32
OOM_RESTARTS, OOM_WINDOW_MS = 20, 60000   # task restarts after a MemoryError, before a reboot
COUNTERS = ("meter_bytes", "readings", "throttled", "published", "mqtt_connects",
            "dropped_oversize", "frames_ok", "frames_crc", "frames_auth", "frames_replay",
            "frames_format", "skipped_bytes", "line_switches", "out_of_memory")


def say(*words):
    print(*words)
    if hasattr(sys.stdout, "flush"):
        sys.stdout.flush()


def _ticks_diff(a, b):
    from time import ticks_diff
    return ticks_diff(a, b)


class App:
    def __init__(self, argv):
        self.stats = dict((name, 0) for name in COUNTERS)
        self.stats.update(version=BOOT["version"] or VERSION,   # the app tree the loader booted
                          last_error=None, mqtt_error=None, meter_error=None)
        self.started = ticks_ms()
        self._last_record = None   # the newest reading, as its compact spool record
        # hw, finite, verbose, data, cfg, board, spool, auto, reader, port, node, publisher, wifi
        lazy("wiring", "build", self, argv, say)()
        self.say = say
        self.portal = self.history = None   # set by web.start()
        self.shed = None   # set by web.start(): drops the web handlers when the heap runs out
        self._oom_since, self._oom_count = self.started, 0
        self._watchdog = None
        self.restart = False
        self.reboot = False   # with restart: a new app tree goes on trial, back to the loader

    def _remember_device(self, device):
        with open(self.data + "/meter_id", "w") as f:
            f.write(device)

    @property
    def last_reading(self):
        """The newest Reading, for the web page. Kept as its record: a Reading is a hundred small
        objects on the heap, the record one."""
        if self._last_record is None:
            return None
        from .record import decode
        return decode(self._last_record)[0]

    def _on_reading(self, reading, item):
        self._last_record = item
        if self.history is not None:
            from .reader import now_s
            self.history.add_reading(reading, now_s())
        if self.verbose:
            from meterkit.harmonize import harmonize
            from . import topics
            values = " ".join("%s=%s" % (name, value) for name, value in harmonize(reading))
            say("reading", topics.device_id(reading), reading.timestamp, values)

    # -- tasks -----------------------------------------------------------------------------------

    async def run(self):
        jobs = [self.reader.run, self._wifi, self._housekeeping, self._ota]
        if self.publisher:
            jobs.append(self.publisher.run)
        tasks = [asyncio.create_task(job()) for job in jobs]
        from . import web
        close_web = await web.start(self)
        say("meterkit", VERSION, "on", self.hw.NAME, "board", self.board["name"], "profile",
            self.cfg["meter"]["profile"], "line" if self.auto else "gateway",
            lazy("profiles", "describe")(self.auto.line) if self.auto else self.reader.where)
        while not self.restart and not (self.finite and self.reader.ended and self._all_published()):
            for i in range(len(tasks)):   # only a finite reader (jobs[0]) ends
                if tasks[i].done() and not (i == 0 and self.reader.ended):
                    tasks[i] = await self._rerun(tasks[i], jobs[i])
            await asyncio.sleep_ms(50)
        await close_web()
        if self.restart:
            for task in tasks:
                task.cancel()
            self.port.close()
        await self._diagnostics()
        if self.publisher:
            await self.publisher.stop()
        self.spool.flush()
        if not self.restart:
            say("done", json.dumps(self.stats))

    async def _rerun(self, task, job):
        """A task ended. Out of memory (the heap short at a bad moment: a page view during a
        burst) costs a restart of that task: the spool keeps what was not yet published. Many
        in a row mean a heap too fragmented to recover: the error goes on to the loader, which
        reboots the dongle. Any other end is a bug: show it."""
        try:
            await task
        except MemoryError:
            now = ticks_ms()
            if _ticks_diff(now, self._oom_since) > OOM_WINDOW_MS:
                self._oom_since, self._oom_count = now, 0
            self._oom_count += 1
            if self._oom_count > OOM_RESTARTS:
                raise
            self.stats["out_of_memory"] += 1
            self.stats["last_error"] = "out of memory: a task was restarted"
            if self.shed:
                self.shed()   # the meter side comes first: the page loads again later
            gc.collect()
            return asyncio.create_task(job())
        raise RuntimeError("a runtime task ended")

    def request_restart(self, delay_ms=1000):
        """Restart soon (after the HTTP response got out): a saved config applies at boot."""
        async def later():
            await asyncio.sleep_ms(delay_ms)
            self.restart = True
        asyncio.create_task(later())

    def uptime_s(self):
        return _ticks_diff(ticks_ms(), self.started) // 1000

    def _all_published(self):
        return self.publisher is None or (len(self.spool) == 0 and self.publisher.idle)

    async def _ota(self):
        """Trial watch (health.py), HA's update entity, update checks (ota.py): their code is
        loaded only while it works."""
        if self.publisher is not None and self.cfg["publish"]["ha_discovery"]:
            lazy("ota_entity", "attach", self)()
        self.stats["ota_error"] = lazy("health", "last_error")()
        if BOOT["mode"] == "trial":
            await lazy("health", "watch_trial", self)()
        else:
            await asyncio.sleep(self.cfg["ota"]["trial_s"])
            lazy("health", "stayed_up")()
        interval = self.cfg["ota"]["url"] and self.cfg["ota"]["check_interval_s"]
        check = lazy("ota", "check_for_update", self)
        while True:
            await asyncio.sleep(interval or 3600)
            if interval:
                await check()

    async def _wifi(self):
        while True:
            await self.wifi.keep_up()
            self.stats["rssi"] = self.wifi.rssi()
            await asyncio.sleep(5)

    async def _housekeeping(self):
        if self._watchdog is None:   # once: a restarted task (_rerun) keeps feeding the same one
            self._watchdog = self.hw.Watchdog(WATCHDOG_MS)
        watchdog = self._watchdog
        led = self.hw.Led(self.board)
        every = self.cfg["publish"]["diagnostics_interval"]
        second = 0
        while True:
            watchdog.feed()   # fed only while the loop runs: a stuck task resets the dongle
            led.set(self.publisher is not None and self.publisher.connected)
            if second % every == 0:
                await self._diagnostics()
            second += 1
            await asyncio.sleep(1)

    async def _diagnostics(self):
        gc.collect()
        stats = self.stats
        stats["heap_free"] = self.hw.free_heap()
        stats["uptime_s"] = _ticks_diff(ticks_ms(), self.started) // 1000
        stats["queued"] = len(self.spool)
        stats["dropped"] = self.spool.dropped
        stats["mqtt_connected"] = bool(self.publisher and self.publisher.connected)
        say("diag", json.dumps(stats))
        if self.publisher:
            await self.publisher.publish_diagnostics()


def main(argv=None):
    argv = sys.argv if argv is None else argv
    gc.collect()
    gc.threshold((gc.mem_alloc() + gc.mem_free()) // GC_SHARE)
    while True:
        app = App(argv)
        try:
            asyncio.run(app.run())
        except KeyboardInterrupt:
            app.spool.flush()   # what was only in RAM survives a Ctrl-C
            say("stopped")
            return
        if not app.restart:
            return
        say("restarting")
        app.hw.reset()          # the ESP32 reboots here; the unix port starts a new App
        if app.reboot:
            return "reboot"     # unix: the loader (main.py) picks the app tree anew
        app = None
        asyncio.new_event_loop()
        gc.collect()
