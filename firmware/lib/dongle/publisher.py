"""The publisher task: keep an MQTT connection up and drain the spool into it, in order.

A spooled reading is popped only after the broker acknowledged every message made from it (QoS
1), so a broker outage or a dropped connection replays it: at least once, oldest first, with the
meter's own timestamp. Connecting runs here, with backoff, never in the reader's way. While
connected, a second task polls the socket: keepalive pings and Home Assistant's status topic
(`online` -> announce discovery again).
"""
import asyncio

from meterkit.errors import FormatError

from . import record, topics, unload
from .mqtt import MQTTClient, MQTTError

BACKOFF_FIRST_S = 1
BACKOFF_MAX_S = 30


class Publisher:
    def __init__(self, settings, spool, stats, node, wake, device=None, ssl=None,
                 on_device=None, version=None):
        """settings: the config's mqtt and publish sections merged; node: this dongle's id;
        device: the meter id we published for last (its status topic carries our will), and
        after a space its HA key where that differs (topics.ha_key)."""
        self.s = settings
        self.spool = spool
        self.stats = stats
        self.node = node
        self.wake = wake
        self.on_device = on_device   # callback(device id) to remember it across restarts
        self.version = version
        self.base = settings["base_topic"]
        self.prefix = settings["discovery_prefix"]
        self.client = MQTTClient(settings["client_id"] or "meterkit-" + node, settings["host"],
                                 settings["port"], settings["user"] or None,
                                 settings["password"] or None, keepalive=60, ssl=ssl)
        self.client.set_callback(self._incoming)
        self._speak_for(*(device or node).split(" ")[:2])
        self.announced = []   # meter ids whose discovery configs went out on this connection
        self.idle = True      # nothing left to publish
        self.extras = {}      # name -> callable -> [(topic, payload)]: retained, announced
        self.commands = {}    # topic -> callback(payload): subscribed on every connect
        self.shared = False   # a Modbus bus: many meters, one connection (the will is the dongle's)

    def _speak_for(self, device, key=None):
        """Availability and diagnostics live under the meter's id, where HA's sensors look; key:
        what HA knows the meter's device by (the update entity joins it)."""
        self.device = device
        self.key = key or device
        self.availability = topics.availability(self.base, device)
        topic, _, offline = self.availability
        self.client.will = (topic, offline, True, 1)

    @property
    def connected(self):
        return self.client.connected

    async def run(self):
        backoff = BACKOFF_FIRST_S
        while True:
            if not self.client.connected:
                try:
                    await self._connect()
                    backoff = BACKOFF_FIRST_S
                except (MQTTError, OSError) as e:
                    self.stats["mqtt_error"] = str(e)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX_S)
                    continue
            try:
                await self._drain()
            except (MQTTError, OSError) as e:
                self.stats["mqtt_error"] = str(e)
                if self.client.connected:   # e.g. a PUBACK that never came: start afresh
                    await self.client.disconnect()   # (the half-sent reading goes again)

    async def _connect(self):
        await self.client.connect()
        self.stats["mqtt_connects"] += 1
        self.announced = []
        topic, online, _ = self.availability
        await self.client.publish(topic, online, retain=True, qos=1)
        if self.s["ha_discovery"]:
            await self.client.subscribe(self.prefix + "/status")
        for topic in self.commands:
            await self.client.subscribe(topic)
        asyncio.create_task(self._poll())

    async def _poll(self):
        client = self.client
        try:
            while client.connected:
                await client.poll()
        except MQTTError:
            pass   # the publisher notices and reconnects

    def _incoming(self, topic, payload):
        if topic == (self.prefix + "/status").encode() and payload == b"online":
            self.announced = []   # Home Assistant restarted: send the configs again
        command = self.commands.get(topic.decode())
        if command is not None:
            command(payload)

    async def _drain(self):
        while self.client.connected:
            item = self.spool.peek()
            if item is None:
                self.idle = True
                self.wake.clear()
                try:
                    await asyncio.wait_for(self.wake.wait(), 1)
                except asyncio.TimeoutError:
                    pass
                continue
            self.idle = False
            try:
                batch = self._batch(item)
            except FormatError as e:   # a damaged record can't be sent; don't let it block the rest
                self.stats["last_error"] = e.message
                self.spool.pop()
                continue
            if await self._publish_reading(*batch):
                self.spool.pop()
                self.stats["published"] += 1
        if self.client.last_error:
            self.stats["mqtt_error"] = self.client.last_error

    def _batch(self, item):
        """A spooled record -> (meter id, its HA key if it is a new meter, (Reading, received)
        or None, what a discovery announcement needs or None, the harmonized parts). A plain call
        on purpose: the Reading, a hundred small objects, is gone before the awaits for the
        PUBACKs unless the raw topics still need it."""
        reading, received = record.decode(item)
        device = topics.device_id(reading)
        key = topics.ha_key(reading) if device != self.device else None
        harmonized = None   # the parts: the messages are made one at a time as they go out
        if self.s["harmonized"]:
            harmonized = topics.harmonized_parts(reading, self.base, received)
        meter = None
        if self.s["ha_discovery"] and device not in self.announced:
            from .discovery import about   # _publish_reading unloads it after the announcement
            meter = about(reading)
        kept = (reading, received) if self.s["raw"] else None
        return device, key, kept, meter, harmonized

    async def _publish_reading(self, device, key, kept, meter, harmonized):
        """Publish one reading; False if the connection had to be renewed first (a new meter)."""
        client = self.client
        if device != self.device and not self.shared:
            # a meter we did not speak for: hand over the status topic and reconnect, because
            # the broker learns a will only when we connect
            unload("discovery")
            topic, _, offline = self.availability
            await client.publish(topic, offline, retain=True, qos=1)
            self._speak_for(device, key)
            if self.on_device:
                self.on_device(device if key == device else device + " " + key)
            await client.disconnect()
            return False
        if meter is not None:
            from .discovery import configs
            try:
                for topic, payload in configs(meter, self.base, self.prefix, self.node,
                                              self.version):
                    await client.publish(topic, payload, retain=True, qos=1)
            finally:
                unload("discovery")
            self.announced.append(device)
            # after the meter's configs: an entity that joins the meter's device (the firmware
            # update entity) finds it named; before, HA would make "update.none_firmware" of it
            for messages in self.extras.values():
                for topic, payload in messages():
                    await client.publish(topic, payload, retain=True, qos=1)
        if harmonized is not None:
            root, stamp, found = harmonized
            for entry in found:
                topic, payload = topics.harmonized_message(root, stamp, entry)
                await client.publish(topic, payload, qos=1)
        if kept is not None:
            reading, received = kept
            from .topics_raw import iter_raw_values   # stays loaded: needed for every reading
            for topic, payload in iter_raw_values(reading, self.base, received):
                await client.publish(topic, payload, qos=1)
            topic, payload = topics.raw_state(reading, self.base, received)
            await client.publish(topic, payload, qos=1)
        return True

    async def publish_retained(self, messages):
        """Retained QoS 1 messages now, if connected (a meter's availability): best effort; the
        extras replay them on the next connect."""
        if not self.client.connected:
            return
        try:
            for topic, payload in messages:
                await self.client.publish(topic, payload, retain=True, qos=1)
        except (MQTTError, OSError):
            pass

    async def publish_diagnostics(self):
        """Diagnostics go out now or not at all: they describe the present, no need to spool."""
        if not self.client.connected:
            return
        topic, payload = topics.diagnostics(self.stats, self.base, self.device)
        try:
            await self.client.publish(topic, payload, retain=True, qos=0)
        except MQTTError:
            pass

    async def stop(self):
        """Planned shutdown: say offline (the will covers the unplanned one) and disconnect."""
        if self.client.connected:
            topic, _, offline = self.availability
            try:
                await self.client.publish(topic, offline, retain=True, qos=1)
            except MQTTError:
                pass
            await self.client.disconnect()
