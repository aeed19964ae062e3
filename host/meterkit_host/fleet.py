"""`meterkit simulate --fleet N --mqtt URL`: N simulated dongles on one broker, from one process.

Dongle n is a simulated meter (simulate.Meter, seed + n, a serial number of its own) whose frames
the core's StreamDecoder decodes, published as the dongle publishes them (dongle.topics: the
harmonized values and the state document) over its own MQTT connection: client id
`meterkit-sim-<meter id>`, the status topic `online` with `offline` as its will, QoS 1, at its
meter's rate (or --interval), sped up by --speed, spread evenly over the interval. Publishes are
pipelined (up to WINDOW unacknowledged per connection, sent again after a reconnect) where the
firmware waits for each PUBACK: one process can then play a thousand dongles.

The meter clocks start at --start (default: now) and advance by the interval per reading, so a
fleet run with the same arguments publishes the same readings (tests/test_fleet.py relies on it).
"""
import asyncio
import sys
import time
import urllib.parse

from dongle import topics
from dongle.mqtt import MQTTClient, _packet
from dongle.mqtt_connect import connect_packet
from meterkit.reading import Reading
from meterkit.stream import StreamDecoder

from .arguments import usage_error
from .simulate import PROFILES, Meter

DEMO_KEY = bytes.fromhex("36C66639E48A8CA4D6BC8B282A793BBB")   # encrypted profiles without --key
WINDOW = 200           # unacknowledged publishes per connection
CONNECTING = 100       # connections being opened at once


def profile_list(text):
    """argparse type: one profile or several, comma-separated (a fleet cycles through them)."""
    import argparse
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in PROFILES]
    if not names or unknown:
        raise argparse.ArgumentTypeError("unknown profile %r (choose from %s)"
                                         % (",".join(unknown) or text, ", ".join(sorted(PROFILES))))
    return names


class Dongle:
    """One simulated meter and the decoder a dongle runs on its frames."""

    def __init__(self, number, profile, key=None, auth_key=None, seed=0, start=None,
                 interval=None):
        if profile in ("smarty", "evn") and key is None:
            key = DEMO_KEY
        self.meter = Meter(profile, key, auth_key, seed=seed + number, start=start)
        digits = "%06d" % ((seed + number) % 10 ** 6)
        self.meter.serial = digits + "7" + digits   # every profile's id part holds the number
        if interval:
            self.meter.interval = int(interval)   # whole seconds: the physics is in integers
        self.decoder = StreamDecoder(key, auth_key)

    def next_reading(self):
        """The next push, decoded: (Reading, the meter's clock as the receive time)."""
        frame, _ = self.meter.next()
        readings = [event for event in self.decoder.feed(frame) if isinstance(event, Reading)]
        assert len(readings) == 1, "the simulator's frame did not decode: %r" % (readings,)
        return readings[0], self.meter.clock

    def messages(self, base):
        """What a dongle publishes for its next reading: harmonized values, then the state."""
        reading, received = self.next_reading()
        return (topics.harmonized(reading, base, received)
                + [topics.raw_state(reading, base, received)]), reading


def fleet(count, profiles, key=None, auth_key=None, seed=0, start=None, interval=None):
    return [Dongle(n, profiles[n % len(profiles)], key, auth_key, seed, start, interval)
            for n in range(count)]


class Link(asyncio.Protocol):
    """One dongle's MQTT connection: QoS 1 publishes in flight, PUBACKs counted."""

    def __init__(self, host, port, connect_packet):
        self.host, self.port, self.connect_packet = host, port, connect_packet
        self.transport = None
        self.inbox = b""
        self.unacked = {}              # packet id -> packet, in publish order
        self.next_id = 0
        self.up = asyncio.Event()
        self.room = asyncio.Event()
        self.room.set()
        self.refused = None
        self.closing = False

    async def open(self):
        delay = 0.5
        while True:
            try:
                loop = asyncio.get_running_loop()
                await loop.create_connection(lambda: self, self.host, self.port)
                await asyncio.wait_for(self.up.wait(), 10)
            except (OSError, asyncio.TimeoutError):
                if self.transport:
                    self.transport.close()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)
                continue
            if self.refused:
                raise ConnectionError(self.refused)
            for packet in self.unacked.values():   # again, marked as a duplicate
                self.transport.write(bytes((packet[0] | 0x08,)) + packet[1:])
            return

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.connect_packet)

    def data_received(self, data):
        inbox = self.inbox + data
        while len(inbox) >= 2:
            length = inbox[1]   # every packet a broker sends us is short (< 128 bytes)
            if len(inbox) < 2 + length:
                break
            first, body, inbox = inbox[0], inbox[2:2 + length], inbox[2 + length:]
            if first == 0x40:       # PUBACK
                self.unacked.pop(body[0] << 8 | body[1], None)
                if len(self.unacked) < WINDOW:
                    self.room.set()
            elif first == 0x20:     # CONNACK
                if body[1]:
                    self.refused = "the broker refused the connection (code %d)" % body[1]
                self.up.set()
        self.inbox = inbox

    def connection_lost(self, exc):
        self.transport = None
        self.up.clear()
        self.inbox = b""
        if not self.closing:
            asyncio.ensure_future(self.open())

    async def publish(self, messages, retain=False):
        while len(self.unacked) >= WINDOW:
            self.room.clear()
            await self.room.wait()
        packets = []
        for topic, payload in messages:
            self.next_id = self.next_id % 0xFFFF + 1
            topic = topic.encode()
            packet = _packet(0x33 if retain else 0x32, len(topic), topic, self.next_id, payload)
            self.unacked[self.next_id] = packet
            packets.append(packet)
        if self.transport:
            self.transport.write(b"".join(packets))

    async def drain(self):
        while self.unacked:
            self.room.clear()
            if len(self.unacked) < WINDOW:   # woken by every PUBACK below the window
                await asyncio.sleep(0.05)
            else:
                await self.room.wait()

    def close(self):
        self.closing = True
        if self.transport:
            self.transport.write(b"\xe0\x00")   # DISCONNECT: no will
            self.transport.close()


class Run:
    """The whole fleet on one event loop; `stats` when it is done."""

    def __init__(self, dongles, url, base, count, speed, verbose=False):
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname, parts.port or 1883
        self.user = urllib.parse.unquote(parts.username) if parts.username else None
        self.password = urllib.parse.unquote(parts.password or "") if parts.username else None
        self.dongles, self.base, self.count, self.speed = dongles, base, count, speed
        self.verbose = verbose
        self.stats = {"dongles": len(dongles), "readings": 0, "messages": 0, "late_s": 0.0}

    async def main(self):
        gate = asyncio.Semaphore(CONNECTING)
        began = time.monotonic()
        tasks = [asyncio.ensure_future(self._dongle(n, dongle, gate, began))
                 for n, dongle in enumerate(self.dongles)]
        if self.verbose:
            asyncio.ensure_future(self._progress(began))
        await asyncio.gather(*tasks)
        self.stats["seconds"] = round(time.monotonic() - began, 2)

    async def _dongle(self, n, dongle, gate, began):
        first, reading = dongle.messages(self.base)   # the id comes from the first reading
        meter_id = topics.device_id(reading)
        status, online, offline = topics.availability(self.base, meter_id)
        packet = connect_packet(MQTTClient("meterkit-sim-" + meter_id, self.host, self.port,
                                           self.user, self.password, keepalive=0,
                                           will=(status, offline, True, 1)))
        link = Link(self.host, self.port, packet)
        async with gate:
            await link.open()
        await link.publish([(status, online)], retain=True)
        interval = dongle.meter.interval / self.speed
        due = began + interval * n / len(self.dongles)
        messages, sent = first, 0
        while self.count is None or sent < self.count:
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            else:
                self.stats["late_s"] = max(self.stats["late_s"], -wait)
            await link.publish(messages)
            sent += 1
            self.stats["readings"] += 1
            self.stats["messages"] += len(messages)
            due += interval
            if self.count is None or sent < self.count:
                messages = dongle.messages(self.base)[0]
        await link.publish([(status, offline)], retain=True)
        await link.drain()
        link.close()

    async def _progress(self, began):
        while True:
            await asyncio.sleep(10)
            sys.stderr.write("fleet: %d readings, %d messages in %.0f s; at most %.1f s late\n"
                             % (self.stats["readings"], self.stats["messages"],
                                time.monotonic() - began, self.stats["late_s"]))


def run(args):
    """`meterkit simulate --fleet N --mqtt URL ...` (called by simulate.run)."""
    parts = urllib.parse.urlsplit(args.mqtt or "")
    if parts.scheme != "mqtt" or not parts.hostname:
        return usage_error("--fleet needs --mqtt mqtt://[user:password@]host[:port]")
    if args.fleet < 1 or (args.count is not None and args.count < 1):
        return usage_error("--fleet and --count must be at least 1")
    if args.interval is not None and (args.interval < 1 or args.interval != int(args.interval)):
        return usage_error("--fleet: --interval is whole seconds")
    start = int(time.time()) if args.start is None else args.start
    try:
        dongles = fleet(args.fleet, args.profile, args.key, args.auth_key, args.seed, start,
                        args.interval)
    except ValueError as error:
        return usage_error(str(error))
    job = Run(dongles, args.mqtt, args.base, args.count, args.speed, args.verbose)
    try:
        asyncio.run(job.main())
    except KeyboardInterrupt:
        pass
    except ConnectionError as error:
        return usage_error(str(error))
    stats = job.stats
    print("fleet: %d dongles, %d readings, %d messages acknowledged in %s s; at most %.2f s "
          "behind schedule" % (stats["dongles"], stats["readings"], stats["messages"],
                               stats.get("seconds"), stats["late_s"]))
    return 0
