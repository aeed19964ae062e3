"""The configuration of `meterkit read`: which meters to read and where their readings go.

    config = load(path)          # JSON or TOML (by extension); ConfigError lists every problem
    config = from_args(args)     # the same document built from command-line flags

A document (TOML shown; JSON has the same shape):

    stdout = false                             # JSON lines on standard output
    [[sources]]                                # one table per meter
    name = "house"                             # default: the port's file name
    port = "/dev/ttyUSB0"
    profile = "dsmr5"                          # see sources.PROFILE_NAMES
    key = ""                                   # 32 hex digits, empty: plaintext meter
    auth_key = ""
    line = ""                                  # e.g. "2400 8N1": overrides the profile's line
    slave = 1                                  # Modbus profiles (sdm630, …): the meter's slave id
    [[sources.meters]]                         # profile "modbus": several meters on one bus
    model = "sdm630"                           # see meterkit.modbus.regmap.MODELS; or map = "file"
    slave = 1
    id = ""                                    # the meter's topic id; default "<model>-<slave>"
    [sources.intervals]                        # seconds per quantity (Modbus; modbus_config.py)
    voltage = 10
    [mqtt]
    url = "mqtt://user:password@broker:1883"   # mqtts:// for TLS
    [recorder]
    url = "sqlite:////var/lib/meterkit/readings.db"
    [telegram]                                 # alerts and /status (telegram_sink.py)
    token = "123456789:AAF…"
    chat_id = 123456789

Every field is checked with the firmware's checks (dongle.config); an unknown key is refused with
its path ("sources[1].prot: unknown field"), so a typo never silently does nothing.
"""
import os
from urllib.parse import unquote, urlsplit

from dongle.config import boolean, hex_key, made_of, number, text, topic

from . import modbus_config, sources, telegram_sink

NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."


class ConfigError(ValueError):
    """Every problem of a config, one "field.path: why" per entry of .problems."""

    def __init__(self, problems):
        ValueError.__init__(self, "; ".join(problems))
        self.problems = problems


def state_dir():
    """Where the MQTT spool lives: systemd's StateDirectory, else ~/.local/state/meterkit."""
    return os.environ.get("STATE_DIRECTORY") or os.path.expanduser("~/.local/state/meterkit")


def profile_names():
    """Every profile `read` knows: the firmware's, their aliases, the Modbus models."""
    return sources.PROFILE_NAMES + tuple(p for p in modbus_config.PROFILES
                                         if p not in sources.PROFILE_NAMES)


def profile(value):
    names = profile_names()
    if value not in names:
        raise ValueError("must be one of %s" % ", ".join(names))
    return value


def serial_line(value):
    if text(32)(value):
        sources.parse_line(value)   # raises ValueError with the reason
    return value


def mqtt_url(value):
    parse_mqtt_url(text(512)(value))
    return value


def recorder_url(value):
    if not text(512)(value).startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise ValueError("must be sqlite:///path/readings.db or postgresql://[user@]host/db")
    return value


def path(value):
    if not text(4096)(value):
        raise ValueError("must be a path")
    return value


SOURCE = (
    ("name", "", made_of(NAME_CHARS, "letters, digits, '.', '-' and '_'", 64)),
    ("port", None, path),
    ("profile", None, profile),
    ("key", "", hex_key),
    ("auth_key", "", hex_key),
    ("line", "", serial_line),
) + modbus_config.SOURCE_FIELDS
MQTT = (
    ("url", None, mqtt_url),
    ("base_topic", "smartmeter", topic),
    ("discovery_prefix", "homeassistant", topic),
    ("node", "meterkit", made_of(NAME_CHARS, "letters, digits, '.', '-' and '_'", 32)),
    ("raw", True, boolean),
    ("harmonized", True, boolean),
    ("ha_discovery", True, boolean),
    ("ca_cert", "", text(4096)),                 # PEM file for mqtts://; empty: system CAs
    ("spool", "", text(4096)),                   # directory; empty: <state dir>/spool
    ("spool_bytes", 16777216, number(65536, 1 << 31)),   # ~29 600 DSMR 5 readings: 8 h
    ("diagnostics_interval", 60, number(1, 86400)),
)
RECORDER = (
    ("url", None, recorder_url),
)
REQUIRED = None   # a field whose default is this must be given


def validate(doc):
    """The checked config with defaults filled in, or ConfigError with every problem."""
    problems = []
    if not isinstance(doc, dict):
        raise ConfigError(["(document): must be a table/object"])
    _refuse_unknown(doc, ("sources", "gateways", "mqtt", "recorder", "telegram", "stdout"), "",
                    problems)
    config = {"sources": [], "gateways": [], "mqtt": None, "recorder": None, "telegram": None,
              "stdout": False}
    given = doc.get("sources", [] if "gateways" in doc else None)   # gateways alone will do
    if not isinstance(given, list) or not (given or "gateways" in doc):
        problems.append("sources: must be a list of at least one meter (port, profile, ...)")
        given = []
    for i, source in enumerate(given):
        config["sources"].append(_section(source, SOURCE, "sources[%d]" % i, problems))
    if "gateways" in doc:   # Smart Meter Gateways (smgw/config.py)
        from .smgw.config import gateways
        config["gateways"] = gateways(doc["gateways"], problems, state_dir())
    for name, fields in (("mqtt", MQTT), ("recorder", RECORDER),
                         ("telegram", telegram_sink.FIELDS)):
        if name in doc:
            config[name] = _section(doc[name], fields, name, problems)
    if "stdout" in doc:
        _check(boolean, doc["stdout"], "stdout", problems, config, "stdout")
    if not problems:
        problems += _cross_checks(config)
    if problems:
        raise ConfigError(problems)
    return config


def _refuse_unknown(doc, known, where, problems):
    for key in sorted(doc):
        if key not in known:
            problems.append("%s%s: unknown field (known: %s)" % (where, key, ", ".join(known)))


def _section(given, fields, where, problems):
    if not isinstance(given, dict):
        problems.append("%s: must be a table/object" % where)
        return {}
    _refuse_unknown(given, [name for name, _, _ in fields], where + ".", problems)
    out = {}
    for name, default, check in fields:
        if name in given:
            _check(check, given[name], "%s.%s" % (where, name), problems, out, name)
        elif default is REQUIRED:
            problems.append("%s.%s: missing" % (where, name))
        else:
            out[name] = default
    return out


def _check(check, value, where, problems, out, name):
    try:
        out[name] = check(value)
    except ValueError as e:
        problems.append("%s: %s" % (where, e))


def _cross_checks(config):
    problems = []
    names, ports = [], []
    for i, source in enumerate(config["sources"]):
        where = "sources[%d]" % i
        if not source["name"]:
            source["name"] = _name_of(source["port"]) or "meter%d" % (i + 1)
        if source["name"] in names:
            problems.append("%s.name: %r is used twice (names must differ)" % (where, source["name"]))
        if source["port"] in ports:
            problems.append("%s.port: %s is read twice" % (where, source["port"]))
        names.append(source["name"])
        ports.append(source["port"])
        if sources.needs_key(source["profile"]) and not source["key"]:
            problems.append("%s.key: the %s profile needs the meter's key" % (where, source["profile"]))
        if source["auth_key"] and not source["key"]:
            problems.append("%s.auth_key: set only together with key" % where)
        problems += modbus_config.cross_check(source, where)
    if not (config["mqtt"] or config["recorder"] or config["telegram"] or config["stdout"]):
        problems.append("(document): no sink: set mqtt, recorder, telegram or stdout = true")
    mqtt = config["mqtt"]
    if mqtt is not None and not mqtt["spool"]:
        mqtt["spool"] = os.path.join(state_dir(), "spool")
    return problems


def _name_of(port):
    """/dev/ttyUSB0 -> ttyUSB0, /dev/serial/by-id/usb-FTDI_X -> serial-by-id-usb-FTDI_X."""
    if port.startswith("/dev/"):
        port = port[5:]
    return "".join(ch if ch in NAME_CHARS else "-" for ch in port.strip("/"))[-64:]


def parse_mqtt_url(url):
    """'mqtt[s]://user:password@host:port' -> dict(host, port, user, password, tls)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:   # a port that is not a number
        raise ValueError("not a valid URL (%s)" % e)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError("must look like mqtt://[user:password@]host[:port] (or mqtts:// for TLS)")
    if parts.path not in ("", "/") or parts.query:
        raise ValueError("must have no path or query: the base topic is set with base_topic")
    tls = parts.scheme == "mqtts"
    return {"host": parts.hostname, "port": port or (8883 if tls else 1883), "tls": tls,
            "user": unquote(parts.username or "") or None,
            "password": unquote(parts.password or "") or None}


def load(filename):
    """Read and validate a .json or .toml config file."""
    try:
        with open(filename, "rb") as f:
            content = f.read()
    except OSError as e:
        raise ConfigError(["%s: cannot read (%s)" % (filename, e.strerror or e)])
    try:
        if filename.endswith(".toml"):
            doc = _toml().loads(content.decode())
        else:
            import json
            doc = json.loads(content.decode())
    except ConfigError:
        raise
    except ValueError as e:   # JSON and TOML decode errors and bad UTF-8 are ValueErrors
        kind = "TOML" if filename.endswith(".toml") else "JSON"
        raise ConfigError(["%s: not valid %s (%s)" % (filename, kind, e)])
    return validate(doc)


def _toml():
    try:
        import tomllib   # Python 3.11+
    except ImportError:
        try:
            import tomli as tomllib
        except ImportError:
            raise ConfigError(["TOML configs need Python 3.11+ or `pip install tomli`; "
                               "or write the config as JSON"])
    return tomllib


def from_args(args):
    """The config document the simple command-line form describes, validated."""
    source = {"port": args.port, "profile": args.profile}
    for name in ("key", "auth_key", "line", "slave"):
        value = getattr(args, name, None)
        if value:
            source[name] = value.hex() if isinstance(value, bytes) else value
    doc = {"sources": [source], "stdout": bool(args.stdout)}
    if args.mqtt:
        doc["mqtt"] = {"url": args.mqtt, "base_topic": args.base}
        if args.spool:
            doc["mqtt"]["spool"] = args.spool
    if args.record:
        doc["recorder"] = {"url": args.record}
    if not (args.mqtt or args.record):
        doc["stdout"] = True   # nothing else asked for: show the readings
    return validate(doc)
