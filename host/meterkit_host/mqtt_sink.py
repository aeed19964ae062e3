"""The MQTT sink: publishes exactly what the dongle publishes (dongle.topics), store-and-forward.

Its queue is the firmware's spool (dongle.spool) on disk: a broker outage is buffered and replayed
in order with QoS 1, a reading leaving the spool only once the broker acknowledged every message
made from it (at least once, oldest first, also across restarts). Connecting, backoff and
publishing run in the sink's own thread, never in a meter's.
"""
import logging
import os
import threading
import time

from dongle import record, topics
from dongle.spool import Spool
from meterkit.errors import FormatError

from .hostconfig import parse_mqtt_url
from .sinks import BACKOFF_FIRST_S, BACKOFF_MAX_S, SinkError

log = logging.getLogger("meterkit.read")

ACK_TIMEOUT_S = 10
SPOOL_RAM_ITEMS = 64


class MqttDown(Exception):
    """The broker is unreachable, refused us, or did not acknowledge in time."""


class MqttSink:

    name = "mqtt"

    def __init__(self, settings):
        self.s = settings
        self.broker = parse_mqtt_url(settings["url"])
        try:
            os.makedirs(settings["spool"], exist_ok=True)
            self.spool = Spool(settings["spool"], SPOOL_RAM_ITEMS, settings["spool_bytes"])
        except (OSError, ValueError) as e:
            raise SinkError("mqtt.spool: cannot use %s (%s)" % (settings["spool"], e))
        self.lock = threading.Lock()   # the spool is shared by the meters' threads and ours
        self.wake = threading.Event()
        self.closing = threading.Event()
        self.links = {}                # meter id -> its connection (_Link)
        self.pending = {}              # meter id -> latest diagnostics not yet published
        self.stats = {"published": 0, "mqtt_connects": 0, "mqtt_error": None}
        self.down = False
        self.thread = threading.Thread(target=self._run, name="sink-mqtt", daemon=True)
        if len(self.spool):
            log.info("mqtt: %d readings from before are buffered; they go first", len(self.spool))

    def start(self):
        self.thread.start()

    def put(self, source, reading, received):
        try:
            with self.lock:
                self.spool.put(record.encode(reading, received))
        except ValueError as e:   # a record larger than a spool item
            log.warning("mqtt: a reading from %s was not buffered: %s", source, e)
        self.wake.set()

    def diagnostics(self, device, stats):
        with self.lock:
            self.pending[device] = stats
        self.wake.set()

    def _run(self):
        backoff = BACKOFF_FIRST_S
        while True:
            self.wake.clear()
            try:
                busy = self._send_next()
                self._send_diagnostics()
            except MqttDown as e:
                self._went_down(e, backoff)
                if self.closing.wait(backoff):
                    return
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            backoff = BACKOFF_FIRST_S
            if not busy:
                if self.closing.is_set():
                    return
                self.wake.wait(1)

    def _went_down(self, error, backoff):
        self.stats["mqtt_error"] = str(error)
        self.down = True
        for link in self.links.values():
            link.close()
        self.links = {}
        log.warning("mqtt: %s; %d readings buffered, retrying in %d s", error, len(self.spool), backoff)

    def _send_next(self):
        """Publish the oldest buffered reading; False when there was none."""
        with self.lock:
            item = self.spool.peek()
        if item is None:
            return False
        try:
            reading, received = record.decode(item)
        except FormatError as e:   # a damaged record can't be sent; don't let it block the rest
            log.warning("mqtt: dropped a damaged buffered reading: %s", e.message)
        else:
            self._publish(reading, received)
            self.stats["published"] += 1
        with self.lock:
            self.spool.pop()
        return True

    def _publish(self, reading, received):
        s, base = self.s, self.s["base_topic"]
        link = self._link(topics.device_id(reading))
        if s["ha_discovery"] and not link.announced:
            if reading.source == "smgw_gateway":   # a Smart Meter Gateway: its own device
                from dongle.smgw_discovery import gateway_configs as configs
            else:
                configs = topics.discovery
            link.publish(configs(reading, base, s["discovery_prefix"], s["node"]), retain=True)
            link.announced = True
        messages = []
        if s["harmonized"]:
            messages += topics.harmonized(reading, base, received)
        if s["raw"]:
            messages += topics.raw_values(reading, base, received)
            messages.append(topics.raw_state(reading, base, received))
        link.publish(messages)

    def _link(self, device):
        link = self.links.get(device)
        if link is None:
            link = _Link(self.broker, self.s, device)
            link.open()
            self.links[device] = link
            self.stats["mqtt_connects"] += 1
            if self.down:
                self.down = False
                log.info("mqtt: connected to %s:%d again; replaying %d buffered readings in order",
                         self.broker["host"], self.broker["port"], len(self.spool))
            else:
                log.info("mqtt: connected to %s:%d for meter %s", self.broker["host"],
                         self.broker["port"], device)
        return link

    def _send_diagnostics(self):
        """Diagnostics describe the present: published when the meter's link is up, never spooled."""
        with self.lock:
            pending, self.pending = self.pending, {}
            extra = {"queued": len(self.spool), "dropped": self.spool.dropped}
        for device, stats in pending.items():
            link = self.links.get(device)
            if link is not None:
                stats = dict(stats)
                stats.update(self.stats)
                stats.update(extra, mqtt_connected=True)
                topic, payload = topics.diagnostics(stats, self.s["base_topic"], device)
                link.client.publish(topic, payload, qos=0, retain=True)
                if stats.get("online") is not None:   # a Modbus meter that stopped or resumed answering
                    link.client.publish(link.status, link.online if stats["online"] else link.offline,
                                        qos=1, retain=True)

    def stop(self, timeout):
        """Publish what is buffered (for up to `timeout` s), say offline, keep the rest on disk."""
        self.closing.set()
        self.wake.set()
        self.thread.join(timeout)
        for link in list(self.links.values()):
            link.close(say_offline=True)
        with self.lock:
            self.spool.flush()
            left = len(self.spool)
        if left:
            log.info("mqtt: %d readings stay buffered in %s for the next start", left, self.s["spool"])


class _Link:
    """One MQTT connection per meter: a broker keeps one will per connection, and the will is the
    meter's status topic (offline when this host dies unplanned), as on the dongle."""

    def __init__(self, broker, settings, device):
        import paho.mqtt.client as paho
        self.where = "%s:%d" % (broker["host"], broker["port"])
        self.broker = broker
        self.status, self.online, self.offline = topics.availability(settings["base_topic"], device)
        self.ha_status = settings["discovery_prefix"] + "/status"
        self.watch_ha = settings["ha_discovery"]
        self.announced = False     # discovery configs sent on this connection
        self.up = threading.Event()
        self.refused = None
        client = self.client = paho.Client(paho.CallbackAPIVersion.VERSION2,
                                           client_id="%s-%s" % (settings["node"], device))
        if broker["user"]:
            client.username_pw_set(broker["user"], broker["password"])
        if broker["tls"]:
            client.tls_set(ca_certs=settings["ca_cert"] or None)
        client.will_set(self.status, self.offline, qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = lambda *args: self.up.clear()
        client.on_message = self._on_message

    def _on_connect(self, client, userdata, flags, reason, properties):
        if reason.is_failure:
            self.refused = "the broker at %s refused us: %s" % (self.where, reason)
        else:
            self.up.set()

    def _on_message(self, client, userdata, message):
        if message.topic == self.ha_status and message.payload == b"online":
            self.announced = False   # Home Assistant restarted: send the configs again

    def open(self):
        try:
            self.client.connect(self.broker["host"], self.broker["port"], keepalive=60)
        except (OSError, ValueError) as e:   # refused, unresolvable, TLS handshake (ssl errors are OSErrors)
            raise MqttDown("cannot reach the broker at %s (%s)" % (self.where, e))
        self.client.loop_start()
        deadline = time.monotonic() + ACK_TIMEOUT_S
        while not self.up.is_set() and self.refused is None and time.monotonic() < deadline:
            self.up.wait(0.05)
        if not self.up.is_set():
            self.close()
            raise MqttDown(self.refused or "no answer from the broker at %s" % self.where)
        if self.watch_ha:
            self.client.subscribe(self.ha_status)
        self.publish([(self.status, self.online)], retain=True)

    def publish(self, messages, retain=False):
        """Publish with QoS 1 and wait for every PUBACK; MqttDown if they do not all come."""
        if not self.up.is_set():
            raise MqttDown("lost the connection to %s" % self.where)
        sent = [self.client.publish(topic, payload, qos=1, retain=retain) for topic, payload in messages]
        deadline = time.monotonic() + ACK_TIMEOUT_S
        for info in sent:
            while not self._acknowledged(info):
                if not self.up.is_set():   # paho saw the socket close: don't wait for the timeout
                    raise MqttDown("lost the connection to %s" % self.where)
                if time.monotonic() > deadline:
                    raise MqttDown("no acknowledgement from %s within %d s" % (self.where, ACK_TIMEOUT_S))

    def _acknowledged(self, info):
        try:
            info.wait_for_publish(0.05)
            return info.is_published()
        except (RuntimeError, ValueError) as e:   # paho could not even queue it
            raise MqttDown("publishing to %s failed (%s)" % (self.where, e))

    def close(self, say_offline=False):
        if say_offline and self.up.is_set():
            try:
                self.publish([(self.status, self.offline)], retain=True)
            except MqttDown:
                pass   # the will says it for us
        self.client.disconnect()
        self.client.loop_stop()
