"""The harmonized profile: well-known names for the OBIS values every pipeline wants.

Names and units are fixed (power in W, energy in kWh, voltage V, current A, gas m3); conversions
are exact powers of ten on Exact values. The B group (channel) is ignored for electricity, so
Kamstrup/L+G `1-1:` codes map like `1-0:`.
"""
from .exact import Exact

# (C, D, E) of electricity OBIS codes -> harmonized name, quantity
_ELECTRIC = (
    ((1, 7, 0), "power_in", "power"),
    ((2, 7, 0), "power_out", "power"),
    ((1, 8, 0), "energy_in", "energy"),
    ((2, 8, 0), "energy_out", "energy"),
    ((1, 8, 1), "energy_in_t1", "energy"),
    ((1, 8, 2), "energy_in_t2", "energy"),
    ((2, 8, 1), "energy_out_t1", "energy"),
    ((2, 8, 2), "energy_out_t2", "energy"),
    ((32, 7, 0), "voltage_l1", "voltage"),
    ((52, 7, 0), "voltage_l2", "voltage"),
    ((72, 7, 0), "voltage_l3", "voltage"),
    ((31, 7, 0), "current_l1", "current"),
    ((51, 7, 0), "current_l2", "current"),
    ((71, 7, 0), "current_l3", "current"),
    ((21, 7, 0), "power_in_l1", "power"),
    ((41, 7, 0), "power_in_l2", "power"),
    ((61, 7, 0), "power_in_l3", "power"),
    ((22, 7, 0), "power_out_l1", "power"),
    ((42, 7, 0), "power_out_l2", "power"),
    ((62, 7, 0), "power_out_l3", "power"),
)

# unit the meter states -> power of ten to reach the harmonized unit, per quantity
_TO_BASE = {
    "power": {"W": 0, "kW": 3, "MW": 6},
    "energy": {"kWh": 0, "Wh": -3, "MWh": 3},
    "voltage": {"V": 0, "kV": 3},
    "current": {"A": 0, "mA": -3},
    "gas": {"m3": 0, "dm3": -3},
}

UNITS = {"power": "W", "energy": "kWh", "voltage": "V", "current": "A", "gas": "m3"}

# name -> quantity, for sinks that need the unit or the topic group of a harmonized name
QUANTITY = dict((name, quantity) for _, name, quantity in _ELECTRIC)
QUANTITY["gas"] = "gas"


def _split(obis):
    """'1-0:1.8.0' -> (1, 0, (1, 8, 0)), or None for codes with an F group or odd shape."""
    try:
        ab, cde = obis.split(":")
        a, b = ab.split("-")
        c, d, e = cde.split(".")
        return int(a), int(b), (int(c), int(d), int(e))
    except ValueError:
        return None


def _convert(value, quantity):
    if not isinstance(value.value, Exact):
        return None
    power = _TO_BASE[quantity].get(value.unit)
    if power is None and quantity == "gas" and not value.unit:
        power = 0   # some M-Bus gas channels state no unit; m3 is the only one in use
    if power is None:
        return None
    return value.value.scaled(power)


def harmonize(reading):
    """Reading -> list of (name, Exact) in a fixed order; names the meter does not provide are left out."""
    found = {}
    for obis, value in reading.values:
        parts = _split(obis)
        if parts is None:
            continue
        a, b, cde = parts
        if a == 1:
            for key, name, quantity in _ELECTRIC:
                if key == cde and name not in found:
                    converted = _convert(value, quantity)
                    if converted is not None:
                        found[name] = converted
        elif a == 7 or (a == 0 and b >= 1 and cde in ((24, 2, 1), (24, 2, 3), (24, 3, 0))):
            if _is_gas(reading, b) and "gas" not in found:
                converted = _convert(value, "gas")
                if converted is not None:
                    found["gas"] = converted
    out = [(name, found[name]) for _, name, _ in _ELECTRIC if name in found]
    if "gas" in found:
        out.append(("gas", found["gas"]))
    return out


def _is_gas(reading, channel):
    """DSMR M-Bus channels carry a device type (0-n:24.1.0): 3 is gas. Without it, trust m3."""
    device = reading.get("0-%d:24.1.0" % channel)
    if device is None or not isinstance(device.value, Exact):
        return True
    return device.value == 3
