"""`meterkit record`: subscribe to the harmonized topics (and optionally the raw state documents)
and store every value in SQLite or PostgreSQL.

Nothing is lost across a broker restart or a recorder restart: the subscription is QoS 1 on a
persistent session (MQTT 5, clean start off, a fixed client id), and a message is acknowledged
only after its batch is committed. Replays (the dongle's store-and-forward, MQTT redelivery) are
stored once: the table's key is meter + time + name. Several recorders share the work as a group
(record_service.py).

The MQTT and config helpers here are shared with `meterkit bridge`.
"""
import json
import logging
import sys
import time
import urllib.parse

from meterkit.errors import FormatError
from meterkit.harmonize import QUANTITY

from .arguments import usage_error
from .mappings import parse_json, reading_from_state
from .recorder import StoreError, harmonized_row, open_store, reading_rows

log = logging.getLogger("meterkit.record")

DEFAULTS = {"mqtt": "mqtt://127.0.0.1:1883", "client_id": "meterkit-recorder",
            "db": "sqlite:///meterkit.db", "base": "smartmeter", "raw": False, "from_state": False,
            "group": "", "batch": 5000, "adopt_after": 30, "aggregate_every": 60,
            "retention_days": 0}
KINDS = {"mqtt": str, "client_id": str, "db": str, "base": str, "raw": bool, "from_state": bool,
         "group": str, "batch": int, "adopt_after": int, "aggregate_every": int,
         "retention_days": int}


class ConfigError(Exception):
    pass


def add_command(commands):
    record = commands.add_parser("record", help="store MQTT readings in SQLite or PostgreSQL")
    record.add_argument("--config", help="JSON file: {%s}" % ", ".join(DEFAULTS))
    record.add_argument("--mqtt", help="broker URL, mqtt://[user:password@]host[:port] (default %s)"
                        % DEFAULTS["mqtt"])
    record.add_argument("--db", help="sqlite:///file.db or postgresql://... (default %s)" % DEFAULTS["db"])
    record.add_argument("--base", help="base topic (default %s)" % DEFAULTS["base"])
    record.add_argument("--client-id", help="MQTT client id; keep it fixed so the broker keeps our queue")
    record.add_argument("--raw", action="store_true", default=None,
                        help="also store every OBIS value of the raw <base>/<id>/state documents")
    record.add_argument("--from-state", action="store_true", default=None,
                        help="take the harmonized values from the state documents: one message per "
                             "reading instead of one per value (a fleet's recorders)")
    record.add_argument("--group", help="share the work with the other recorders of this group "
                        "(MQTT shared subscription $share/GROUP/...); each needs its own "
                        "--client-id")
    record.add_argument("--batch", type=int, help="rows per database transaction at most "
                        "(default %d)" % DEFAULTS["batch"])
    record.add_argument("--adopt-after", type=int, metavar="S",
                        help="--group: drain a member's queue when it has been away S seconds "
                             "(default %d)" % DEFAULTS["adopt_after"])
    record.add_argument("--aggregate-every", type=int, metavar="S",
                        help="PostgreSQL: fold new rows into the minute, hour and day buckets every S "
                             "seconds (default %d)" % DEFAULTS["aggregate_every"])
    record.add_argument("--retention-days", type=int, metavar="D",
                        help="PostgreSQL: delete raw rows after D days, keep the aggregates "
                             "(default 0: keep everything)")
    record.set_defaults(run=run)


def run(args):
    from .record_service import Service
    try:
        settings = settings_from(args, DEFAULTS, KINDS)
        for key in ("batch", "adopt_after", "aggregate_every"):
            if settings[key] < 1:
                raise ConfigError("%s must be at least 1" % key)
        if settings["retention_days"] < 0:
            raise ConfigError("retention_days must not be negative")
        broker_address(settings["mqtt"])
        options = {}
        if settings["db"].startswith(("postgresql://", "postgres://")):
            options = {"retention_days": settings["retention_days"],
                       "aggregate_every": settings["aggregate_every"]}
        store = open_store(settings["db"], **options)
    except StoreError as error:
        if error.transient:   # the database is down or unreachable: exit 1, let systemd retry
            sys.stderr.write("meterkit: %s\n" % error)
            return 1
        return usage_error(str(error))
    except ConfigError as error:
        return usage_error(str(error))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    recorder = Recorder(store, settings["base"], settings["raw"], settings["from_state"])
    return Service(settings, store, recorder).run()


class Recorder:
    """Turns the messages we subscribe to into rows (meter, time, name, value, unit)."""

    def __init__(self, store, base, raw=False, from_state=False):
        self.store = store
        self.base = base
        self.raw = raw
        self.from_state = from_state

    def topics(self):
        """The topic filters: harmonized values, state documents, or both."""
        found = [] if self.from_state else [self.base + "/+/+/+"]
        if self.raw or self.from_state:
            found.append(self.base + "/+/state")
        return found

    def rows(self, topic, payload):
        """The rows of one message ([]: not ours to store); FormatError if malformed."""
        levels = topic.split("/")
        if levels[-1] == "state":
            reading, received = reading_from_state(parse_json(payload))
            return reading_rows(reading, received, obis=self.raw)
        meter, quantity, name = levels[-3:]
        if QUANTITY.get(name) != quantity:
            return []   # not a harmonized topic (e.g. a bridge's or HA's own): not ours to store
        doc = parse_json(payload)
        stamp = doc.get("timestamp")
        if stamp is None:   # a dongle without a clock or NTP: when we heard it
            stamp = int(time.time())
        if isinstance(stamp, bool) or not isinstance(stamp, int):
            raise FormatError("timestamp %r is not epoch seconds" % (stamp,))
        try:
            return [harmonized_row(meter, stamp, name, doc.get("value"))]
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


def broker_address(url):
    """mqtt[s]://[user:password@]host[:port] -> (host, port, user or None, password, tls)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ConfigError("mqtt: %r is not mqtt://[user:password@]host[:port] (or mqtts://)" % url)
    try:
        port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
    except ValueError:
        raise ConfigError("mqtt: bad port in %r" % url)
    user = urllib.parse.unquote(parts.username) if parts.username else None
    password = urllib.parse.unquote(parts.password or "")
    return parts.hostname, port, user, password, parts.scheme == "mqtts"


def mqtt_client(url, client_id, subscriptions, on_message, manual_ack=False):
    """A paho client on a persistent session that (re)subscribes at QoS 1 on every connect."""
    import paho.mqtt.client as mqtt

    host, port, user, password, tls = broker_address(url)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False,
                         protocol=mqtt.MQTTv311, manual_ack=manual_ack)
    if user:
        client.username_pw_set(user, password)
    if tls:
        client.tls_set()
    client.reconnect_delay_set(1, 30)

    def on_connect(client, userdata, flags, reason, properties):
        if reason.is_failure:
            log.error("broker %s refused us: %s", host, reason)
            return
        client.subscribe([(topic, 1) for topic in subscriptions])
        log.info("connected to %s:%d (session %s)", host, port,
                 "resumed" if flags.session_present else "new")

    def on_subscribe(client, userdata, mid, reasons, properties):
        log.info("subscribed")

    def on_disconnect(client, userdata, flags, reason, properties):
        log.warning("disconnected from %s:%d (%s); reconnecting", host, port, reason)

    def on_connect_fail(client, userdata):
        log.warning("broker %s:%d unreachable; retrying", host, port)

    client.on_connect, client.on_subscribe = on_connect, on_subscribe
    client.on_disconnect, client.on_connect_fail = on_disconnect, on_connect_fail
    client.on_message = on_message
    client.connect_async(host, port, keepalive=30)
    return client


def serve(client):
    """Run until interrupted; an unreachable broker is retried, never fatal."""
    try:
        client.loop_forever(retry_first_connection=True)
    except KeyboardInterrupt:
        client.disconnect()
    return 0
