"""The raw per-value topics in the smartmeter-datacollector layout: <base>/<id>/<NAME> ->
{"value", "unit", "timestamp", "obis"}; NAME is that project's data-point name where one exists,
else the OBIS code with ':' and '.' as '_' (e.g. 0-1_24_2_1). Apart from topics.py because its
name table is ~1.5 KB of heap the dongle needs only with the raw topics on (publish.raw).
"""
from meterkit.reading import is_plain, json_string, json_value, value_fields

from .topics import _timestamp, device_id

# smartmeter-datacollector data-point names (smartmeter/meter_data.py and the OBIS table in
# smartmeter/cosem.py of scs/smartmeter-datacollector), by the (C, D, E) groups of an
# electricity code; B (the channel) is ignored as L+G meters state energies on 1-1:.
_DATACOLLECTOR = (
    " 1.7.0=ACTIVE_POWER_P 2.7.0=ACTIVE_POWER_N 3.7.0=REACTIVE_POWER_P "
    "4.7.0=REACTIVE_POWER_N 13.7.0=POWER_FACTOR 14.7.0=NET_FREQUENCY "
    "21.7.0=ACTIVE_POWER_P_L1 22.7.0=ACTIVE_POWER_N_L1 23.7.0=REACTIVE_POWER_P_L1 "
    "24.7.0=REACTIVE_POWER_N_L1 31.7.0=CURRENT_L1 32.7.0=VOLTAGE_L1 "
    "41.7.0=ACTIVE_POWER_P_L2 42.7.0=ACTIVE_POWER_N_L2 43.7.0=REACTIVE_POWER_P_L2 "
    "44.7.0=REACTIVE_POWER_N_L2 51.7.0=CURRENT_L2 52.7.0=VOLTAGE_L2 "
    "61.7.0=ACTIVE_POWER_P_L3 62.7.0=ACTIVE_POWER_N_L3 63.7.0=REACTIVE_POWER_P_L3 "
    "64.7.0=REACTIVE_POWER_N_L3 71.7.0=CURRENT_L3 72.7.0=VOLTAGE_L3 "
    "81.7.40=ANGLE_UI_L1 81.7.51=ANGLE_UI_L2 81.7.62=ANGLE_UI_L3 "
    "1.8.0=ACTIVE_ENERGY_P 1.8.1=ACTIVE_ENERGY_P_T1 1.8.2=ACTIVE_ENERGY_P_T2 "
    "2.8.0=ACTIVE_ENERGY_N 2.8.1=ACTIVE_ENERGY_N_T1 2.8.2=ACTIVE_ENERGY_N_T2 "
    "3.8.0=REACTIVE_ENERGY_P 3.8.1=REACTIVE_ENERGY_P_T1 3.8.2=REACTIVE_ENERGY_P_T2 "
    "4.8.0=REACTIVE_ENERGY_N 4.8.1=REACTIVE_ENERGY_N_T1 4.8.2=REACTIVE_ENERGY_N_T2 "
    "5.8.0=REACTIVE_ENERGY_Q1 6.8.0=REACTIVE_ENERGY_Q2 7.8.0=REACTIVE_ENERGY_Q3 "
    "8.8.0=REACTIVE_ENERGY_Q4 "
)


def iter_raw_values(reading, base, received=None):
    root = "%s/%s/" % (base, device_id(reading))
    stamp = json_value(_timestamp(reading, received))
    used = []
    for obis, value in reading.values:
        named, plain = _RAW_NAMES.get(obis) or _raw_names(obis)
        name = plain if named is None or named in used else named
        used.append(name)
        if is_plain(obis):   # (no quoted copy of the code made first)
            payload = '{%s, "timestamp": %s, "obis": "%s"}' % (value_fields(value), stamp, obis)
        else:
            payload = '{%s, "timestamp": %s, "obis": %s}' % (value_fields(value), stamp,
                                                             json_string(obis))
        yield root + name, payload.encode()


# OBIS code -> (that project's name or None, the code with '_' for ':' and '.'): a meter sends
# the same few dozen codes in every telegram
_RAW_NAMES = {}
MAX_RAW_NAMES = 64


def _raw_names(obis):
    named = _datacollector_name(obis) if obis.startswith("1-") else None
    if len(_RAW_NAMES) >= MAX_RAW_NAMES:   # bounded: noise can't grow it
        _RAW_NAMES.clear()
    names = _RAW_NAMES[obis] = (named, obis.replace(":", "_").replace(".", "_"))
    return names


def _datacollector_name(obis):
    """That project's name for an electricity code, written as decoders write it (no leading
    0s), by its C.D.E groups; None when it has none. (Looked up without a key made first.)"""
    cde = obis[obis.find(":") + 1:]
    at = _DATACOLLECTOR.find(cde) if cde else -1
    while at > 0:
        end = at + len(cde)
        if _DATACOLLECTOR[at - 1] == " " and _DATACOLLECTOR[end] == "=":
            return _DATACOLLECTOR[end + 1:_DATACOLLECTOR.index(" ", end)]
        at = _DATACOLLECTOR.find(cde, at + 1)
    return None
