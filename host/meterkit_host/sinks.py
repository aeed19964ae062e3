"""Where readings go: stdout JSON lines, the recorder, and MQTT (mqtt_sink.py).

Every sink has its own thread and its own queue; `put(source, reading, received)` never blocks, so
a slow or dead sink never holds up a meter. These sinks keep a bounded queue in RAM and drop the
oldest reading when it overflows (counted, logged); the MQTT sink's queue is the spool on disk.
"""
import collections
import logging
import sys
import threading

log = logging.getLogger("meterkit.read")

BACKOFF_FIRST_S = 1
BACKOFF_MAX_S = 30
QUEUE_ITEMS = 1000


class SinkError(Exception):
    """A sink that cannot be set up at all (bad spool directory, no recorder module)."""


class Fanout:
    """Hands each reading (and each meter's diagnostics) to every sink."""

    def __init__(self, sinks):
        self.sinks = sinks

    def reading(self, source, reading, received):
        for sink in self.sinks:
            sink.put(source, reading, received)

    def diagnostics(self, device, stats):
        for sink in self.sinks:
            sink.diagnostics(device, stats)

    def start(self):
        for sink in self.sinks:
            sink.start()

    def stop(self, timeout):
        for sink in self.sinks:
            sink.stop(timeout)


class QueueSink:
    """A sink thread fed by a bounded queue: `handle(source, reading, received)` in the subclass."""

    name = "sink"

    def __init__(self, size=QUEUE_ITEMS):
        self.items = collections.deque()
        self.size = size
        self.ready = threading.Condition()
        self.closing = threading.Event()
        self.dropped = 0
        self.thread = threading.Thread(target=self._run, name="sink-" + self.name, daemon=True)

    def start(self):
        self.thread.start()

    def put(self, source, reading, received):
        with self.ready:
            if len(self.items) >= self.size:
                self.items.popleft()
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 100 == 0:
                    log.warning("%s: falling behind, %d readings dropped so far", self.name, self.dropped)
            self.items.append((source, reading, received))
            self.ready.notify()

    def diagnostics(self, device, stats):
        pass   # only MQTT publishes diagnostics

    def _run(self):
        while True:
            with self.ready:
                while not self.items and not self.closing.is_set():
                    self.ready.wait()
                if not self.items:
                    return
                item = self.items.popleft()
            self.handle(*item)

    def stop(self, timeout):
        """Write what is queued (for up to `timeout` s), then end."""
        with self.ready:
            self.closing.set()
            self.ready.notify()
        self.thread.join(timeout)
        if self.items:
            log.warning("%s: %d readings not written at shutdown", self.name, len(self.items))


class StdoutSink(QueueSink):
    """One JSON line per reading: the decode contract's line with the source and receive time first."""

    name = "stdout"

    def __init__(self, stream=None):
        QueueSink.__init__(self)
        self.stream = stream or sys.stdout

    def handle(self, source, reading, received):
        line = '{"source": "%s", "received": %d, %s\n' % (source, received, reading.to_json()[1:])
        try:
            self.stream.write(line)
            self.stream.flush()
        except (OSError, ValueError) as e:   # a closed pipe: keep the other sinks going
            if not self.dropped:
                log.warning("stdout: cannot write (%s); readings no longer printed", e)
            self.dropped += 1


class RecorderSink(QueueSink):
    """Stores readings with meterkit_host.recorder (SQLite or PostgreSQL); retries while the
    database is away. store_reading is idempotent, so a retried reading is stored once."""

    name = "recorder"

    def __init__(self, url):
        QueueSink.__init__(self)
        try:
            from . import recorder
        except ImportError as e:
            raise SinkError("recorder: the recorder module is not available (%s)" % e)
        self.open_store = recorder.open_store
        self.url = url
        self.store = None   # opened in the sink's thread: sqlite3 connections stay in their thread

    def handle(self, source, reading, received):
        backoff = BACKOFF_FIRST_S
        while True:
            try:
                if self.store is None:
                    self.store = self.open_store(self.url)
                self.store.store_reading(reading, received=received)
                return
            except Exception as e:   # any database error: the DB driver decides what they are
                log.warning("recorder: cannot store a reading from %s (%s: %s); retrying in %d s",
                            source, type(e).__name__, e, backoff)
                self._close_store()
                if self.closing.wait(backoff):
                    return
                backoff = min(backoff * 2, BACKOFF_MAX_S)

    def _close_store(self):
        close = getattr(self.store, "close", None)
        self.store = None
        if close:
            try:
                close()
            except Exception:   # it is broken already; a fresh one comes next time
                pass

    def stop(self, timeout):
        QueueSink.stop(self, timeout)
        if not self.thread.is_alive():
            self._close_store()
