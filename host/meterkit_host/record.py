"""`meterkit record`: subscribe to the harmonized topics (and optionally the raw state documents)
and store every value in SQLite or PostgreSQL.

Nothing is lost across a broker restart or a recorder restart: the subscription is QoS 1 on a
persistent session (clean_session off, a fixed client id), and a message is acknowledged only
after its row is committed. Replays (the dongle's store-and-forward, MQTT redelivery) are stored
once: the table's key is meter + time + name.

The MQTT and config helpers here are shared with `meterkit bridge`.
"""
import json
import logging
import time
import urllib.parse

from meterkit.errors import FormatError
from meterkit.harmonize import QUANTITY

from .arguments import usage_error
from .mappings import parse_json, reading_from_state
from .recorder import StoreError, number_text, open_store

log = logging.getLogger("meterkit.record")

DEFAULTS = {"mqtt": "mqtt://127.0.0.1:1883", "client_id": "meterkit-recorder",
            "db": "sqlite:///meterkit.db", "base": "smartmeter", "raw": False}
KINDS = {"mqtt": str, "client_id": str, "db": str, "base": str, "raw": bool}


class ConfigError(Exception):
    pass


def add_command(commands):
    record = commands.add_parser("record", help="store MQTT readings in SQLite or PostgreSQL")
    record.add_argument("--config", help="JSON file: {mqtt, client_id, db, base, raw}")
    record.add_argument("--mqtt", help="broker URL, mqtt://[user:password@]host[:port] (default %s)"
                        % DEFAULTS["mqtt"])
    record.add_argument("--db", help="sqlite:///file.db or postgresql://... (default %s)" % DEFAULTS["db"])
    record.add_argument("--base", help="base topic (default %s)" % DEFAULTS["base"])
    record.add_argument("--client-id", help="MQTT client id; keep it fixed so the broker keeps our queue")
    record.add_argument("--raw", action="store_true", default=None,
                        help="also store every OBIS value of the raw <base>/<id>/state documents")
    record.set_defaults(run=run)


def run(args):
    try:
        settings = settings_from(args, DEFAULTS, KINDS)
        store = open_store(settings["db"])
    except (ConfigError, StoreError) as error:
        return usage_error(str(error))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    recorder = Recorder(store, settings["base"])
    subscriptions = [settings["base"] + "/+/+/+"]
    if settings["raw"]:
        subscriptions.append(settings["base"] + "/+/state")
    try:
        client = mqtt_client(settings["mqtt"], settings["client_id"], subscriptions,
                             recorder.on_message, manual_ack=True)
    except ConfigError as error:
        return usage_error(str(error))
    log.info("recording %s into %s", ", ".join(subscriptions), settings["db"])
    serve(client)
    return 1 if recorder.failed else 0


class Recorder:
    def __init__(self, store, base):
        self.store = store
        self.base = base
        self.counts = {"stored": 0, "replayed": 0, "skipped": 0}
        self.failed = None   # a database error ends the service (systemd restarts it)

    def on_message(self, client, userdata, message):
        try:
            written = self.handle(message.topic, message.payload)
        except FormatError as error:
            self.counts["skipped"] += 1
            log.warning("skipped %s (%d so far): %s", message.topic, self.counts["skipped"], error.message)
            written = 0
        except Exception as error:   # the database failed: leave the message unacknowledged
            log.error("could not store %s: %s; stopping, the broker keeps the message", message.topic, error)
            self.failed = error
            client.disconnect()
            return
        self.counts["stored" if written else "replayed"] += 1
        client.ack(message.mid, message.qos)

    def handle(self, topic, payload):
        """Store one message; returns the rows written (0: already stored, or nothing to store)."""
        levels = topic.split("/")
        if levels[-1] == "state":
            reading, received = reading_from_state(parse_json(payload))
            return self.store.store_reading(reading, received)
        meter, quantity, name = levels[-3:]
        if QUANTITY.get(name) != quantity:
            return 0   # not a harmonized topic (e.g. a bridge's or HA's own): not ours to store
        doc = parse_json(payload)
        stamp = doc.get("timestamp")
        if stamp is None:   # a dongle without a clock or NTP: when we heard it
            stamp = int(time.time())
        if isinstance(stamp, bool) or not isinstance(stamp, int):
            raise FormatError("timestamp %r is not epoch seconds" % (stamp,))
        try:
            return self.store.store_harmonized(meter, stamp, name, number_text(doc.get("value")))
        except ValueError as error:
            raise FormatError(str(error))


# -- shared with `meterkit bridge` ----------------------------------------------------------------

def read_config(path):
    try:
        with open(path) as file:
            doc = json.load(file)
    except OSError as error:
        raise ConfigError("cannot read config %s: %s" % (path, error.strerror))
    except ValueError as error:
        raise ConfigError("config %s is not JSON: %s" % (path, error))
    if not isinstance(doc, dict):
        raise ConfigError("config %s: must be a JSON object" % path)
    return doc


def check_fields(doc, kinds, where="config"):
    """Refuse unknown keys and wrong types, naming the field path."""
    for key, value in doc.items():
        if key not in kinds:
            raise ConfigError("%s.%s: unknown key (known: %s)" % (where, key, ", ".join(sorted(kinds))))
        kind = kinds[key]
        if not isinstance(kind, type):
            continue   # checked by the caller
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise ConfigError("%s.%s: must be %s" % (where, key, {str: "text", bool: "true or false",
                                                                 int: "a whole number"}.get(kind, kind.__name__)))


def settings_from(args, defaults, kinds):
    """Defaults, then the config file, then the command-line flags."""
    settings = dict(defaults)
    if args.config:
        doc = read_config(args.config)
        check_fields(doc, kinds)
        settings.update(doc)
    for key in defaults:
        flag = getattr(args, key, None)
        if flag is not None:
            settings[key] = flag
    return settings


def mqtt_client(url, client_id, subscriptions, on_message, manual_ack=False):
    """A paho client on a persistent session that (re)subscribes at QoS 1 on every connect."""
    import paho.mqtt.client as mqtt

    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ConfigError("mqtt: %r is not mqtt://[user:password@]host[:port] (or mqtts://)" % url)
    try:
        port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
    except ValueError:
        raise ConfigError("mqtt: bad port in %r" % url)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False,
                         protocol=mqtt.MQTTv311, manual_ack=manual_ack)
    if parts.username:
        client.username_pw_set(urllib.parse.unquote(parts.username),
                               urllib.parse.unquote(parts.password or ""))
    if parts.scheme == "mqtts":
        client.tls_set()
    client.reconnect_delay_set(1, 30)

    def on_connect(client, userdata, flags, reason, properties):
        if reason.is_failure:
            log.error("broker %s refused us: %s", parts.hostname, reason)
            return
        client.subscribe([(topic, 1) for topic in subscriptions])
        log.info("connected to %s:%d (session %s)", parts.hostname, port,
                 "resumed" if flags.session_present else "new")

    def on_subscribe(client, userdata, mid, reasons, properties):
        log.info("subscribed")

    def on_disconnect(client, userdata, flags, reason, properties):
        log.warning("disconnected from %s:%d (%s); reconnecting", parts.hostname, port, reason)

    def on_connect_fail(client, userdata):
        log.warning("broker %s:%d unreachable; retrying", parts.hostname, port)

    client.on_connect, client.on_subscribe = on_connect, on_subscribe
    client.on_disconnect, client.on_connect_fail = on_disconnect, on_connect_fail
    client.on_message = on_message
    client.connect_async(parts.hostname, port, keepalive=30)
    return client


def serve(client):
    """Run until interrupted; an unreachable broker is retried, never fatal."""
    try:
        client.loop_forever(retry_first_connection=True)
    except KeyboardInterrupt:
        client.disconnect()
    return 0
