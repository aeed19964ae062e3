"""The [[gateways]] entries of a `meterkit read` / `meterkit smgw` config, checked field by field.

    [[gateways]]
    name = "smgw"                      # its device id in the topics; default from the host
    url = "https://192.168.1.200"      # a path is the family's endpoint where it differs
    family = "auto"                    # auto | ppc | theben | emh
    user = "1234567890"
    password_file = "/etc/meterkit/smgw.password"   # or password = "…"
    client_cert = ""                   # PEM files, when the gateway wants a client certificate
    client_key = ""
    gateway_id = ""                    # Theben: the id in /smgw/m2m/<id>.sm/json; default: user
    mode = "interval"                  # interval | daily (once a day at daily_at)
    interval_s = 300
    daily_at = "00:15"
    timezone = "Europe/Berlin"         # the gateway's local time (PPC pages print no offset)
    timeout_s = 30
    max_logins_per_hour = 12           # the lockout guard: never more, whatever fails
    backoff_max_s = 3600
    state_dir = ""                     # pins and login times; default <state dir>/smgw
"""
import os
from urllib.parse import urlsplit

from dongle.config import choice, made_of, number, text

FAMILY_NAMES = ("auto", "ppc", "theben", "emh")
NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
POLITE_S = 300   # the interval below which a gateway's HAN login may lock (users report it)


def https_url(value):
    parts = urlsplit(text(512)(value))
    try:
        parts.port
    except ValueError as e:
        raise ValueError("not a valid URL (%s)" % e)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError("must look like https://192.168.1.200[:port][/path] (the HAN interface "
                         "speaks only HTTPS)")
    if parts.query or parts.fragment or parts.username:
        raise ValueError("must have no query, fragment or user: give user and password apart")
    return value


def clock_time(value):
    parts = text(5)(value).split(":")
    if len(parts) != 2 or not all(p.isdigit() and len(p) == 2 for p in parts) \
            or int(parts[0]) > 23 or int(parts[1]) > 59:
        raise ValueError("must be HH:MM, e.g. 00:15")
    return value


def time_zone(value):
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
    try:
        ZoneInfo(text(64)(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("not a time zone name such as Europe/Berlin")
    return value


def file_path(value):
    return text(4096)(value)


GATEWAY = (
    ("name", "", made_of(NAME_CHARS, "letters, digits, '-' and '_'", 64)),
    ("url", None, https_url),
    ("family", "auto", choice(FAMILY_NAMES)),
    ("user", None, text(128)),
    ("password", "", text(256)),
    ("password_file", "", file_path),
    ("client_cert", "", file_path),
    ("client_key", "", file_path),
    ("gateway_id", "", made_of(NAME_CHARS + ".", "letters, digits, '.', '-' and '_'", 64)),
    ("mode", "interval", choice(("interval", "daily"))),
    ("interval_s", POLITE_S, number(1, 86400)),
    ("daily_at", "00:15", clock_time),
    ("timezone", "Europe/Berlin", time_zone),
    ("timeout_s", 30, number(1, 600)),
    ("max_logins_per_hour", 12, number(1, 120)),
    ("backoff_max_s", 3600, number(1, 86400)),
    ("state_dir", "", file_path),
)


def gateways(given, problems, state_dir):
    """The checked [[gateways]] list (problems collects 'gateways[i].field: why')."""
    from ..hostconfig import _section
    if not isinstance(given, list) or not given:
        problems.append("gateways: must be a list of at least one gateway ([[gateways]])")
        return []
    out, names = [], []
    for i, entry in enumerate(given):
        where = "gateways[%d]" % i
        before = len(problems)
        spec = _section(entry, GATEWAY, where, problems)
        if len(problems) > before:
            continue
        _finish(spec, where, problems, state_dir)
        if spec["name"] in names:
            problems.append("%s.name: %r is used twice (names must differ)" % (where, spec["name"]))
        names.append(spec["name"])
        out.append(spec)
    return out


def _finish(spec, where, problems, state_dir):
    host = urlsplit(spec["url"]).hostname
    if not spec["name"]:
        spec["name"] = "".join(ch if ch in NAME_CHARS else "-" for ch in "smgw-" + host)[:64]
    if not spec["user"]:
        problems.append("%s.user: must not be empty" % where)
    if bool(spec["password"]) == bool(spec["password_file"]):
        problems.append("%s: give password or password_file (one of them)" % where)
    elif spec["password_file"]:
        try:
            with open(spec["password_file"]) as f:
                spec["_password"] = f.read().strip("\r\n")
        except OSError as e:
            problems.append("%s.password_file: cannot read %s (%s)" % (
                where, spec["password_file"], e.strerror or e))
    else:
        spec["_password"] = spec["password"]
    if spec["client_key"] and not spec["client_cert"]:
        problems.append("%s.client_key: set only together with client_cert" % where)
    for field in ("client_cert", "client_key"):
        if spec[field] and not os.path.isfile(spec[field]):
            problems.append("%s.%s: no such file %s" % (where, field, spec[field]))
    if not spec["state_dir"]:
        spec["state_dir"] = os.path.join(state_dir, "smgw")
