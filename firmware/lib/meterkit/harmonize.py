"""The harmonized profile: well-known names for the OBIS values every pipeline wants.

Names and units are fixed (power in W, energy in kWh, voltage V, current A, gas m3); conversions
are exact powers of ten on Exact values. The B group (channel) is ignored for electricity, so
Kamstrup/L+G `1-1:` codes map like `1-0:`.

The tables are strings read on use: a string costs a tenth of the heap of a table of tuples on the
device, and harmonize() runs once per telegram.
"""
import sys

from .exact import Exact

# (C, D, E) of electricity OBIS codes and the harmonized name, in output order. A name's quantity
# is the word before its first '_'.
_ELECTRIC = """
1.7.0 power_in
2.7.0 power_out
1.8.0 energy_in
2.8.0 energy_out
1.8.1 energy_in_t1
1.8.2 energy_in_t2
2.8.1 energy_out_t1
2.8.2 energy_out_t2
32.7.0 voltage_l1
52.7.0 voltage_l2
72.7.0 voltage_l3
31.7.0 current_l1
51.7.0 current_l2
71.7.0 current_l3
21.7.0 power_in_l1
41.7.0 power_in_l2
61.7.0 power_in_l3
22.7.0 power_out_l1
42.7.0 power_out_l2
62.7.0 power_out_l3
"""
GAS_AT = len(_ELECTRIC)   # gas comes after every electricity name

# quantity, a unit the meter states, the power of ten that reaches the harmonized unit
_TO_BASE = """
power W 0
power kW 3
power MW 6
energy kWh 0
energy Wh -3
energy MWh 3
voltage V 0
voltage kV 3
current A 0
current mA -3
gas m3 0
gas dm3 -3
"""

UNITS = {"power": "W", "energy": "kWh", "voltage": "V", "current": "A", "gas": "m3"}


class _Quantities:
    """QUANTITY[name] and QUANTITY.get(name): the quantity of a harmonized name, for sinks that
    need its unit or topic group ('power_in_l1' -> 'power'). A dict would cost ~2 KB of heap."""

    def get(self, name, default=None):
        if name == "gas":
            return "gas"
        if not isinstance(name, str) or " " in name or "\n" in name or " %s\n" % name not in _ELECTRIC:
            return default
        return _quantity(name)

    def __getitem__(self, name):
        quantity = self.get(name)
        if quantity is None:
            raise KeyError(name)
        return quantity


def _quantity(name):
    for quantity in UNITS:
        if name.startswith(quantity):
            return quantity


QUANTITY = _Quantities()


def _split(obis):
    """'1-0:1.8.0' -> [1, 0, 1, 8, 0], or None for codes with an F group or odd shape.

    Reads the digits one by one: slices and int() would allocate for every value of every
    telegram. Anything but plain digit groups is read as int() reads them."""
    groups = [0]
    empty = True   # the current group has no digit yet
    for ch in obis:
        if "0" <= ch <= "9":
            groups[-1] = groups[-1] * 10 + ord(ch) - 48
            empty = False
        elif not empty and len(groups) < 5 and ch == "-:.."[len(groups) - 1]:
            groups.append(0)
            empty = True
        else:
            break
    else:
        if len(groups) == 5 and not empty:
            return groups
    try:
        ab, cde = obis.split(":")
        a, b = ab.split("-")
        c, d, e = cde.split(".")
        return [int(a), int(b), int(c), int(d), int(e)]
    except ValueError:
        return None


def _power(quantity, unit):
    """The power of ten from unit to the harmonized unit of quantity; None for a unit we do not
    know. Some M-Bus gas channels state no unit: m3 is the only one in use."""
    key = "\n%s %s " % (quantity, unit)
    at = _TO_BASE.find(key)
    if at < 0 or " " in unit or "\n" in unit:   # (such a unit would match across lines)
        return 0 if quantity == "gas" and not unit else None
    at += len(key)
    return int(_TO_BASE[at:_TO_BASE.find("\n", at)])


def harmonize(reading):
    """Reading -> list of (name, Exact) in a fixed order; names the meter does not provide are left out."""
    return [(entry[1], entry[2]) for entry in entries(reading)]


def entries(reading):
    """harmonize() as (position, name, Exact, M-Bus channel, quantity, '"name": value' or None):
    the host memoizes each value's entry with its JSON, as decoders share repeating values."""
    return _chosen(reading, (value_entry(obis, value, False) for obis, value in reading.values))


def _chosen(reading, found):
    """The entries that count, in output order: a name's first value; gas from a gas channel."""
    chosen = {}   # position of the name in _ELECTRIC (gas: GAS_AT) -> entry
    for entry in found:
        if entry and entry[0] not in chosen and (entry[0] != GAS_AT or is_gas(reading, entry[3])):
            chosen[entry[0]] = entry
    return [chosen[at] for at in sorted(chosen)]


# The host's (MEMO): (obis, Value) -> entries()'s entry for it, or (). Defined only there: on the
# dongle the module code and the function it skips are freed after import.
MEMO = sys.implementation.name != "micropython"
if MEMO:
    _SEEN = {}
    MAX_SEEN = 512

    def entries(reading):   # noqa: F811 (the host's, memoized)
        memo = _SEEN
        found = list(map(memo.get, reading.values))   # (): no harmonized name; None: not seen yet
        if None in found:
            values = reading.values
            for at in range(len(found)):
                if found[at] is None:
                    if len(memo) >= MAX_SEEN:   # bounded: changing values can't grow it
                        memo.clear()
                    pair = values[at]
                    found[at] = memo[pair] = value_entry(pair[0], pair[1], True) or ()
        return _chosen(reading, found)


# obis -> _place(obis, unit) + (unit,), or (unit,) for a code with no harmonized name: a meter
# states the same codes in the same units each time. (One tuple an entry: ~0.8 KB less heap.)
# Small on the device too, where it saves a dozen new objects per value (harmonize runs twice
# per telegram there: history and the publisher).
_PLACES = {}
MAX_PLACES = 64


def value_entry(obis, value, rendered):
    """One value's harmonized entry (see entries), None when it has no harmonized name."""
    if not isinstance(value.value, Exact):
        return None   # text, timestamps and empty values have no harmonized name
    unit = value.unit
    known = _PLACES.get(obis)
    if known is None or known[-1] != unit:
        if len(_PLACES) >= MAX_PLACES:   # bounded: noise can't grow it
            _PLACES.clear()
        known = _PLACES[obis] = (_place(obis, unit) or ()) + (unit,)
    if len(known) == 1:
        return None
    at, name, power, channel, quantity, _ = known
    converted = value.value.scaled(power) if power else value.value
    return (at, name, converted, channel, quantity,
            '"%s": %s' % (name, converted) if rendered else None)


def _place(obis, unit):
    """(position, name, power of ten to its unit, M-Bus channel, quantity) of a code stated in
    unit, or None when it has no harmonized name."""
    groups = _split(obis)
    if groups is None:
        return None
    a, b, c, d, e = groups
    if a == 1:
        key = "\n%d.%d.%d " % (c, d, e)
        at = _ELECTRIC.find(key)
        if at < 0:
            return None
        name = _ELECTRIC[at + len(key):_ELECTRIC.find("\n", at + 1)]
        quantity = _quantity(name)
    elif a == 7 or (a == 0 and b >= 1 and c == 24 and (d, e) in ((2, 1), (2, 3), (3, 0))):
        at, name, quantity = GAS_AT, "gas", "gas"
    else:
        return None
    power = _power(quantity, unit)
    return None if power is None else (at, name, power, b, quantity)


def is_gas(reading, channel):
    """DSMR M-Bus channels carry a device type (0-n:24.1.0): 3 is gas. Without it, trust m3."""
    device = reading.get("0-%d:24.1.0" % channel)
    if device is None or not isinstance(device.value, Exact):
        return True
    return device.value == 3
