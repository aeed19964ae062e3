"""The Modbus fields of a `meterkit read` source, checked like the others (hostconfig.py).

    [[sources]]
    port = "/dev/ttyUSB0"
    profile = "modbus"            # or a model (sdm630, sdm120, …) with `slave` for one meter
    line = "19200 8E1"            # empty: the first meter's factory line (its map)
    timeout_ms = 300              # the meters' turnaround; the answer's time on the wire comes on top
    retry_s = 30                  # a meter that stopped answering is asked again this often
    [[sources.meters]]
    model = "sdm630"              # meterkit.modbus.regmap.MODELS, or map = "/path/own.map"
    slave = 1
    id = "heatpump"               # topic id; default "<model>-<slave>"
    [sources.intervals]           # seconds per quantity: the longest matching name prefix wins
    voltage = 10
    current = 5
    energy = 300
"""
from dongle.config import made_of, number

from meterkit.modbus import poll, regmap

PROFILES = ("modbus",) + regmap.MODELS + tuple(alias for alias, _ in regmap.ALIASES)
ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
_id = made_of(ID_CHARS, "letters, digits, '-' and '_'", 64)


def meters(value):
    if not isinstance(value, list):
        raise ValueError("must be a list of meters (model, slave, id)")
    out = []
    for i, entry in enumerate(value):
        if not isinstance(entry, dict):
            raise ValueError("[%d]: must be a table/object" % i)
        for key in sorted(entry):
            if key not in ("model", "slave", "id", "map"):
                raise ValueError("[%d].%s: unknown field (known: model, slave, id, map)" % (i, key))
        model = regmap.model_name(str(entry.get("model", "")))
        if not entry.get("map") and model not in regmap.MODELS:
            raise ValueError("[%d].model: must be one of %s (or give map)" % (i, ", ".join(regmap.MODELS)))
        try:
            slave = number(1, 247)(entry.get("slave", 1))
            meter_id = _id(entry.get("id", ""))
        except ValueError as e:
            raise ValueError("[%d]: %s" % (i, e))
        if entry.get("map"):
            try:
                with open(entry["map"]) as f:
                    regmap.parse(f.read())
            except (OSError, ValueError) as e:
                raise ValueError("[%d].map: %s" % (i, e))
        out.append({"model": model, "slave": slave, "id": meter_id, "map": entry.get("map", "")})
    return out


def intervals(value):
    if not isinstance(value, dict):
        raise ValueError("must be a table of quantity = seconds")
    for key in value:
        if not key or [c for c in key if c not in ID_CHARS]:
            raise ValueError("%r: names are letters, digits and '_'" % key)
        number(1, 86400)(value[key])
    return dict(value)


SOURCE_FIELDS = (
    ("slave", 0, number(0, 247)),
    ("meters", [], meters),
    ("intervals", {}, intervals),
    ("timeout_ms", poll.TIMEOUT_MS, number(20, 10000)),
    ("retry_s", poll.RETRY_MS // 1000, number(1, 3600)),   # an offline meter is probed this often
)


def cross_check(source, where):
    """Problems of a source's Modbus fields; fills `meters` for a one-model profile."""
    profile = source["profile"]
    if profile not in PROFILES:
        if source["slave"] or source["meters"] or source["intervals"]:
            return ["%s: slave, meters and intervals are for Modbus profiles only" % where]
        return []
    if profile == "modbus":
        if source["slave"]:
            return ["%s.slave: profile modbus lists its meters in meters (model, slave)" % where]
        if not source["meters"]:
            return ["%s.meters: profile modbus needs at least one meter (model, slave)" % where]
    elif source["meters"]:
        return ["%s.meters: give profile = \"modbus\" to list meters" % where]
    else:
        source["meters"] = [{"model": regmap.model_name(profile), "slave": source["slave"] or 1,
                             "id": "", "map": ""}]
    slaves = [m["slave"] for m in source["meters"]]
    if len(set(slaves)) != len(slaves):
        return ["%s.meters: a slave id is used twice on one bus" % where]
    return []
