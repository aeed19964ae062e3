"""`meterkit bridge`: subscribe to other devices' topics and republish their values in the
harmonized profile (<base>/<id>/<quantity>/<name> -> {"timestamp", "value"}), with the firmware's
own topic code (dongle.topics.harmonized), so a bridged meter looks exactly like a dongle.

    {"mqtt": "mqtt://127.0.0.1", "base": "smartmeter",
     "devices": [{"topic": "tele/+/SENSOR", "mapping": "tasmota-gplug",
                  "meter_ids": {"gPlug10": "EWB"}},
                 {"topic": "smartmeter/+/+", "mapping": "datacollector"}]}

A device entry says which topics to take (`topic`, an MQTT filter), how to read them (`mapping`:
a built-in name or a mapping file, see mappings/), where the meter id is (`id_level`, the topic
level, default 1) and what to call it (`meter_ids`), the clock's zone for naive times
(`timezone`) and the Tasmota JSON section (`section`). Malformed payloads are logged, counted
and skipped; the bridge keeps running.
"""
import logging
import time

from paho.mqtt.client import topic_matches_sub

from dongle.topics import harmonized
from meterkit.errors import FormatError

from . import mappings
from .arguments import usage_error
from .record import ConfigError, check_fields, mqtt_client, serve, settings_from

log = logging.getLogger("meterkit.bridge")

DEFAULTS = {"mqtt": "mqtt://127.0.0.1:1883", "client_id": "meterkit-bridge", "base": "smartmeter",
            "devices": []}
KINDS = {"mqtt": str, "client_id": str, "base": str, "devices": list}
DEVICE_KINDS = {"topic": str, "mapping": str, "id_level": int, "meter_ids": dict,
                "timezone": str, "section": str}


def add_command(commands):
    bridge = commands.add_parser("bridge", help="republish other devices' MQTT values as harmonized topics")
    bridge.add_argument("--config", required=True, help="JSON file: {mqtt, client_id, base, devices}")
    bridge.add_argument("--mqtt", help="broker URL (overrides the config)")
    bridge.add_argument("--base", help="base topic of the harmonized output (default smartmeter)")
    bridge.set_defaults(run=run, client_id=None, devices=None)


def run(args):
    try:
        settings = settings_from(args, DEFAULTS, KINDS)
        bridge = Bridge(settings["devices"], settings["base"])
        client = mqtt_client(settings["mqtt"], settings["client_id"],
                             [device.topic for device in bridge.devices], bridge.on_message)
    except (ConfigError, FormatError) as error:
        return usage_error(str(error))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    log.info("bridging %s to %s/<id>/<quantity>/<name>",
             ", ".join(device.topic for device in bridge.devices), settings["base"])
    return serve(client)


class Device:
    """One `devices` entry of the config, checked."""

    def __init__(self, doc, where):
        if not isinstance(doc, dict):
            raise ConfigError("%s: must be an object" % where)
        check_fields(doc, DEVICE_KINDS, where)
        for key in ("topic", "mapping"):
            if key not in doc:
                raise ConfigError("%s.%s: missing" % (where, key))
        self.topic = doc["topic"]
        self.mapping = mappings.load_mapping(doc["mapping"])
        self.id_level = doc.get("id_level", 1)
        self.meter_ids = doc.get("meter_ids", {})
        for key, value in self.meter_ids.items():
            if not isinstance(value, str):
                raise ConfigError("%s.meter_ids.%s: must be text" % (where, key))
        if "section" in doc:
            self.mapping = dict(self.mapping, section=doc["section"])
        zone = doc.get("timezone", self.mapping.get("timezone", "UTC"))
        self.tz = mappings.zone(zone, where + ".timezone")

    def meter_id(self, topic):
        levels = topic.split("/")
        found = levels[self.id_level] if self.id_level < len(levels) else ""
        return self.meter_ids.get(found, found)

    def translate(self, topic, payload):
        return mappings.translate(self.mapping, self.meter_id(topic), topic, payload, self.tz)


class Bridge:
    def __init__(self, devices, base):
        if not devices:
            raise ConfigError("config.devices: list at least one device to bridge")
        self.devices = [Device(doc, "config.devices[%d]" % i) for i, doc in enumerate(devices)]
        self.base = base
        self.last = {}   # topic -> payload: overlapping filters deliver a message once per match
        self.counts = {"received": 0, "published": 0, "ignored": 0, "skipped": 0}

    def on_message(self, client, userdata, message):
        for topic, payload in self.handle(message.topic, message.payload):
            client.publish(topic, payload, qos=1)

    def handle(self, topic, payload):
        """[(topic, payload)] to publish for one incoming message; never raises on bad input."""
        if self.last.get(topic) == payload:
            return []
        self.last[topic] = payload
        self.counts["received"] += 1
        out, skipped = [], False
        for device in self.devices:
            if not topic_matches_sub(device.topic, topic):
                continue
            try:
                found = device.translate(topic, payload)
            except FormatError as error:
                skipped = True
                self.counts["skipped"] += 1
                log.warning("skipped %s (%d so far): %s", topic, self.counts["skipped"], error.message)
                continue
            if found is not None:
                reading, received = found
                if received is None:   # the device stated no time: when we heard it
                    received = int(time.time())
                out += harmonized(reading, self.base, received)
        if not out and not skipped:
            self.counts["ignored"] += 1   # not meter data (status, LWT) or fields nobody maps
        self.counts["published"] += len(out)
        return out
