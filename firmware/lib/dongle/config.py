"""The dongle's configuration: one JSON document, validated field by field, written atomically.

    config, errors = validate(doc)   # errors: ["mqtt.port: must be 1..65535", ...]
    config = load(path)              # missing or corrupt file: defaults (errors=[] collects why)
    save(path, config)               # temp file + rename: a power cut leaves the old or the new file
    public_view(config)              # secrets masked, for status pages

A config is {section: {field: value}}; SCHEMA lists every field with its default and its check.
A field that fails its check keeps its default and adds one "section.field: why" message.
"""
import json
import os

PROFILES = ("auto", "dsmr5", "dsmr22", "smarty", "mbus_dlms", "hdlc_dlms", "modbus", "smgw")
SECRETS = (("wifi", "password"), ("mqtt", "password"), ("meter", "key"),
           ("meter", "auth_key"), ("admin", "password"), ("smgw", "password"))
MASK = "********"
HEX = "0123456789abcdefABCDEF"
NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
HOST_CHARS = NAME_CHARS + ".:"


# -- checks: each returns the (normalized) value or raises ValueError(why) ---------------------------

def _text(value, max_len, min_len=0):
    if not isinstance(value, str):
        raise ValueError("must be text")
    size = len(value.encode())
    if size > max_len:
        raise ValueError("must be at most %d bytes long" % max_len)
    if value and size < min_len:
        raise ValueError("must be empty or at least %d characters long" % min_len)
    return value


def text(max_len, min_len=0):
    return lambda value: _text(value, max_len, min_len)


def made_of(chars, what, max_len):
    def check(value):
        for char in _text(value, max_len):
            if char not in chars:
                raise ValueError("must be %s (%r is not allowed)" % (what, char))
        return value
    return check


def number(low, high):
    def check(value):
        if type(value) is not int:
            raise ValueError("must be a whole number")
        if not low <= value <= high:
            raise ValueError("must be %d..%d" % (low, high))
        return value
    return check


def boolean(value):
    if type(value) is not bool:
        raise ValueError("must be true or false")
    return value


def choice(options):
    def check(value):
        if value not in options:
            raise ValueError("must be one of %s" % ", ".join(options))
        return value
    return check


def hex_key(value):
    """16-byte AES key as 32 hex digits (spaces allowed); empty means none."""
    key = _text(value, 64).replace(" ", "")
    if key and (len(key) != 32 or [c for c in key if c not in HEX]):
        raise ValueError("must be 32 hex digits (16 bytes) or empty")
    return key.upper()


def wifi_password(value):
    _text(value, 64)
    if value and not 8 <= len(value) <= 63 and not (len(value) == 64 and
                                                    not [c for c in value if c not in HEX]):
        raise ValueError("must be empty (open network), 8..63 characters or 64 hex digits")
    return value


def admin_password(value):
    """Stored as a salted hash (web.auth); a clear password given here is hashed on the spot."""
    from .web.auth import hash_password, is_hash
    if isinstance(value, str) and is_hash(value):
        return value
    _text(value, 64, 8)
    return hash_password(value) if value else ""


def release_url(value):
    _text(value, 256)
    if value and not (value.startswith("http://") or value.startswith("https://")):
        raise ValueError("must be empty or an http:// or https:// URL")
    return value


def topic(value):
    _text(value, 128)
    if not value or "+" in value or "#" in value or value[0] == "/" or value[-1] == "/":
        raise ValueError("must be a topic like meterkit/kitchen: not empty, no + or #, "
                         "no leading or trailing /")
    return value


def pem_certificate(value):
    _text(value, 8192)
    if value and not (value.strip().startswith("-----BEGIN CERTIFICATE-----")
                      and value.strip().endswith("-----END CERTIFICATE-----")):
        raise ValueError("must be empty or a PEM certificate (-----BEGIN CERTIFICATE----- ...)")
    return value


def modbus_meters(value):
    """'sdm630:1 sdm120:2:heatpump': model:slave[:id] per meter, spaces between (the setup page's
    one text field); models as meterkit.modbus.regmap knows them."""
    from meterkit.modbus.regmap import MODELS, model_name
    seen = []
    for entry in _text(value, 256).split():
        parts = entry.split(":")
        if len(parts) not in (2, 3) or not parts[1].isdigit() or not 1 <= int(parts[1]) <= 247:
            raise ValueError("must be model:slave[:id] entries like sdm630:1 (slave 1..247)")
        if model_name(parts[0]) not in MODELS:
            raise ValueError("%r: the models are %s" % (parts[0], ", ".join(MODELS)))
        if len(parts) == 3:
            made_of(NAME_CHARS, "letters, digits, - and _", 64)(parts[2])
        if parts[1] in seen:
            raise ValueError("slave %s is listed twice" % parts[1])
        seen.append(parts[1])
    return value


def serial_line(value):
    """'' (the first meter's factory line) or '19200 8E1'."""
    text = _text(value, 16)
    parts = text.split()
    if text and (len(parts) != 2 or not parts[0].isdigit() or len(parts[1]) != 3
                 or parts[1][0] not in "78" or parts[1][1] not in "NEO" or parts[1][2] not in "12"):
        raise ValueError("must be empty or like '19200 8E1' (baud, bits 7|8, parity N|E|O, stop 1|2)")
    return text


def intervals(value):
    """'voltage=10 current=5 energy=300': seconds per quantity (longest name prefix wins)."""
    for entry in _text(value, 256).split():
        name, _, seconds = entry.partition("=")
        if not name or not seconds.isdigit() or not 1 <= int(seconds) <= 86400:
            raise ValueError("must be name=seconds entries like voltage=10 (1..86400 s)")
        made_of(NAME_CHARS, "letters, digits, - and _", 32)(name)
    return value


def fingerprint(value):
    """A certificate's SHA-256: 64 hex digits, pairs may be split by ':' (as browsers show it)."""
    digits = _text(value, 95).replace(":", "").replace(" ", "").lower()
    if digits and (len(digits) != 64 or [c for c in digits if c not in HEX]):
        raise ValueError("must be empty (pin the first certificate seen) or the SHA-256 "
                         "fingerprint: 64 hex digits, e.g. AB:CD:…")
    return digits


def gateway_family(value):
    if value not in ("", "ppc", "theben", "emh"):
        raise ValueError("must be ppc, theben or emh (a gateway is not probed on the dongle: "
                         "auto is the host's)")
    return value


def clock_time(value):
    parts = _text(value, 5).split(":")
    if len(parts) != 2 or not all(p.isdigit() and len(p) == 2 for p in parts) \
            or int(parts[0]) > 23 or int(parts[1]) > 59:
        raise ValueError("must be HH:MM, e.g. 00:15")
    return value


SCHEMA = (
    ("wifi", (
        ("ssid", "", text(32)),
        ("password", "", wifi_password),
        ("ap_after_s", 300, number(0, 86400)),  # unreachable this long: open the setup AP; 0: never
    )),
    ("meter", (
        ("profile", "auto", choice(PROFILES)),
        ("key", "", hex_key),           # empty: the meter sends plaintext
        ("auth_key", "", hex_key),      # empty: no authentication key (or the tag is not checked)
        ("source", "", text(256)),      # unix port only: tcp:HOST:PORT or a capture file; empty: UART
        ("modbus", "", modbus_meters),  # profile modbus: the meters on the bus, 'sdm630:1 sdm120:2'
        ("line", "", serial_line),      # profile modbus: '19200 8E1'; empty: the first meter's own
        ("intervals", "", intervals),   # profile modbus: 'voltage=10 current=5'; empty: defaults
        ("modbus_timeout_ms", 300, number(20, 10000)),   # a meter's turnaround before "no answer"
        ("modbus_retry_s", 30, number(1, 3600)),         # a meter that stopped answering: asked again
    )),
    ("smgw", (   # profile smgw: a Smart Meter Gateway's HAN interface (smgw.py)
        ("family", "", gateway_family),
        ("host", "", made_of(HOST_CHARS, "a host name or IP address", 253)),
        ("port", 443, number(1, 65535)),
        ("user", "", text(128)),
        ("password", "", text(256)),
        ("gateway_id", "", made_of(NAME_CHARS + ".", "letters, digits, ., - and _", 64)),
        ("pin", "", fingerprint),            # empty: the first certificate seen is pinned
        ("name", "smgw", made_of(NAME_CHARS, "letters, digits, - and _", 64)),   # in the topics
        ("mode", "interval", choice(("interval", "daily"))),
        ("interval_s", 300, number(10, 86400)),   # less than 300 s risks a HAN login lockout
        ("daily_at", "00:15", clock_time),        # daily mode: the gateway's local time
        ("max_logins_per_hour", 12, number(1, 120)),
        ("timeout_s", 30, number(1, 600)),
        ("backoff_max_s", 3600, number(1, 86400)),
    )),
    ("board", (
        ("name", "generic", made_of(NAME_CHARS, "letters, digits, - and _", 32)),
    )),
    ("mqtt", (
        ("host", "", made_of(HOST_CHARS, "a host name or IP address", 253)),  # empty: MQTT off
        ("port", 1883, number(1, 65535)),
        ("user", "", text(64)),
        ("password", "", text(128)),
        ("tls", False, boolean),
        ("ca_cert", "", pem_certificate),
        ("base_topic", "smartmeter", topic),   # the harmonized profile's root: smartmeter/<id>/power/power_in
        ("discovery_prefix", "homeassistant", topic),
        ("client_id", "", made_of(NAME_CHARS, "letters, digits, - and _", 23)),  # empty: chip id
    )),
    ("publish", (
        ("raw", True, boolean),
        ("harmonized", True, boolean),
        ("ha_discovery", True, boolean),
        ("min_interval", 0, number(0, 86400)),   # seconds between publishes; 0: every reading
        ("on_change", False, boolean),
        ("diagnostics_interval", 60, number(1, 86400)),   # seconds between diagnostics messages
    )),
    ("http", (
        ("port", 80, number(0, 65535)),         # the status page (/api/status); 0: off
    )),
    ("admin", (
        ("password", "", admin_password),       # a hash; empty: setup mode, no password yet
    )),
    ("ap", (
        ("timeout", 600, number(0, 86400)),     # seconds the setup access point stays up; 0: always
    )),
    ("ota", (
        ("url", "", release_url),               # a release server (meterkit ota serve); empty: none
        ("check_interval_s", 0, number(0, 604800)),   # how often to look for a release; 0: never
        ("auto_install", False, boolean),       # install a newer release found by the check
        ("trial_s", 120, number(10, 3600)),     # a new version must become healthy this fast
    )),
)


def defaults():
    return dict((section, dict((name, default) for name, default, _ in fields))
                for section, fields in SCHEMA)


def validate(doc):
    """(config, errors): every known field checked, defaults for what is missing or invalid."""
    config = defaults()
    if not isinstance(doc, dict):
        return config, ["(document): must be a JSON object"]
    errors = []
    known = [section for section, _ in SCHEMA]
    for key in sorted(doc):
        if key not in known:
            errors.append("%s: unknown field" % key)
    for section, fields in SCHEMA:
        given = doc.get(section, {})
        if not isinstance(given, dict):
            errors.append("%s: must be an object" % section)
            continue
        names = [name for name, _, _ in fields]
        for key in sorted(given):
            if key not in names:
                errors.append("%s.%s: unknown field" % (section, key))
        for name, _, check in fields:
            if name in given:
                try:
                    config[section][name] = check(given[name])
                except ValueError as e:
                    errors.append("%s.%s: %s" % (section, name, e))
    named = [e.split(": ", 1)[0] for e in errors]   # a field refused says why; not the default
    return config, errors + [e for e in _cross_checks(config) if e.split(": ", 1)[0] not in named]


def _cross_checks(config):
    meter = config["meter"]
    errors = []
    if meter["profile"] == "smarty" and not meter["key"]:
        errors.append("meter.key: the smarty profile needs the meter's key")
    if meter["auth_key"] and not meter["key"]:
        errors.append("meter.auth_key: set only together with meter.key")
    if meter["profile"] == "modbus" and not meter["modbus"]:
        errors.append("meter.modbus: the modbus profile needs its meters, e.g. sdm630:1")
    if meter["profile"] == "smgw":
        for name, example in (("family", "ppc, theben or emh"), ("host", "192.168.1.200"),
                              ("user", "the HAN user from the metering point operator")):
            if not config["smgw"][name]:
                errors.append("smgw.%s: the smgw profile needs it (%s)" % (name, example))
    return errors


def public_view(config):
    """A copy with every secret replaced by MASK ("" stays "": it shows the secret is unset)."""
    view = dict((section, dict(values)) for section, values in config.items())
    for section, name in SECRETS:
        if view[section][name]:
            view[section][name] = MASK
    return view


def load(path, errors=None):
    """The config in path; defaults if it is missing or corrupt (why: appended to errors)."""
    problems = []
    try:
        with open(path, "rb") as f:
            content = f.read()
    except OSError:
        return defaults()
    try:
        doc = json.loads(content.decode())
    except ValueError:  # bad JSON or bad UTF-8 (UnicodeError is a ValueError)
        problems.append("%s: not valid JSON, using the defaults" % path)
        doc = {}
    config, invalid = validate(doc)
    if errors is not None:
        errors.extend(problems + invalid)
    return config


def to_json(config):
    """The document in SCHEMA order, one section per line, for people who read the file."""
    lines = []
    for section, fields in SCHEMA:
        values = ", ".join('"%s": %s' % (name, json.dumps(config[section][name]))
                           for name, _, _ in fields)
        lines.append('  "%s": {%s}' % (section, values))
    return "{\n" + ",\n".join(lines) + "\n}\n"


_rename = getattr(os, "replace", None) or os.rename   # replace: the CPython spelling on Windows


def save(path, config):
    """Validate, write path.tmp, then rename over path: never a half-written config."""
    config, errors = validate(config)
    if errors:
        raise ValueError("; ".join(errors))
    temp = path + ".tmp"
    with open(temp, "w") as f:
        f.write(to_json(config))
        f.flush()
        if hasattr(os, "fsync"):
            os.fsync(f.fileno())
    _rename(temp, path)
