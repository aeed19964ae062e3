"""What a push does not say itself: units, scalers and positions, per meter model.

Most pushes name each value with its OBIS code and many carry (scaler, unit) next to it. The
rest need a table: Kaifa NO lists carry bare values in a fixed order, Kaifa SE and Kamstrup
lists carry OBIS codes but no scalers, and the L+G / Iskra pushes list their capture objects
(class, OBIS, attribute) but send only attribute 2 of each register, never its scaler.

Scaler tables are keyed by the OBIS (C, D) groups as C << 8 | D (an int: no tuple per look-up):
tariffs (E) and channels (A, B) scale alike.
"""
from ..obis import obis_bytes

# DLMS unit enumeration (IEC 62056-6-2, Blue Book) -> text; 0 and 255 mean "no unit"
_UNITS = (
    "", "a", "mo", "wk", "d", "h", "min", "s", "°", "°C", "currency", "m", "m/s", "m3", "m3",
    "m3/h", "m3/h", "m3/d", "m3/d", "l", "kg", "N", "Nm", "Pa", "bar", "J", "J/h", "W", "VA",
    "var", "Wh", "VAh", "varh", "A", "C", "V", "V/m", "F", "Ω", "Ωm2/m", "Wb", "T", "A/m", "H",
    "Hz", "1/(Wh)", "1/(varh)", "1/(VAh)", "V2h", "A2h", "kg/s", "S", "K", "1/(V2h)", "1/(A2h)",
    "1/m3", "%", "Ah",
)


def unit_text(enum):
    return _UNITS[enum] if 0 <= enum < len(_UNITS) else ""


def unit_enum(text):
    """Inverse of unit_text for encoders ('' -> 255, no unit)."""
    if not text:
        return 255
    if text not in _UNITS:
        raise ValueError("%r is not a DLMS unit (use the base unit and a scaler)" % text)
    return _UNITS.index(text)


def default_unit(code):
    """Unit of an electricity register whose push carries none, from its OBIS C and D groups."""
    if code[0] != 1:
        return ""
    c, d = code[2], code[3]
    quantity = c % 20 if c < 81 else 0      # 21..40 are L1, 41..60 L2, 61..80 L3
    if d in (7, 4, 5, 6, 24, 25, 26):       # instantaneous, averages, demand
        if quantity in (1, 2, 15, 16):
            return "W"
        if quantity in (3, 4, 5, 6, 7, 8):
            return "var"
        if quantity in (9, 10):
            return "VA"
        if quantity == 11 or c == 91:
            return "A"
        if quantity == 12:
            return "V"
        if c == 14:
            return "Hz"
    if d in (8, 9, 29):                     # energy registers
        if quantity in (1, 2, 15, 16):
            return "Wh"
        if quantity in (3, 4, 5, 6, 7, 8):
            return "varh"
        if quantity in (9, 10):
            return "VAh"
    return ""


# ---- scaler tables for pushes without (scaler, unit) ----------------------------------------

_CURRENTS = ((31, 7), (51, 7), (71, 7))
_VOLTAGES = ((32, 7), (52, 7), (72, 7))
_POWER_FACTOR = ((13, 7), (33, 7), (53, 7), (73, 7))
_ENERGY = ((1, 8), (2, 8), (3, 8), (4, 8))


def _table(*groups):
    table = {}
    for codes, scaler in groups:
        for c, d in codes:
            table[c << 8 | d] = scaler
    return table


MODELS = {
    # Kaifa MA304 lists "KFM_001" (NO/SE HAN): amshan's kaifa.py scales currents by 10^-3 and
    # voltages by 10^-1; powers and energies are whole W/var and Wh/varh.
    "kaifa": _table((_CURRENTS, -3), (_VOLTAGES, -1)),
    # Kamstrup "Kamstrup_V0001" lists: amshan's kamstrup.py, currents 10^-2, energies in tens of Wh.
    "kamstrup": _table((_CURRENTS, -2), (_ENERGY, 1)),
    # Kamstrup CT meters (meter type 1-1:96.1.1 starting "685"): currents in mA (amshan).
    "kamstrup_ct": _table((_CURRENTS, -3), (_ENERGY, 1)),
    # L+G E450 (CH/VSE push): smartmeter-datacollector's register map, currents x0.01, PF x0.001.
    "lg_e450": _table((_CURRENTS, -2), (_POWER_FACTOR, -3)),
    # L+G E570: the same project maps currents with scaling 1.0; PF x0.001.
    "lg_e570": _table((_POWER_FACTOR, -3),),
    # Iskra AM550 and L+G E360 (push setup 0-6:25.9.0): voltages x0.1, currents x0.01, PF x0.001.
    "iskra_am550": _table((_VOLTAGES, -1), (_CURRENTS, -2), (_POWER_FACTOR, -3)),
}
MODELS["lg_e360"] = MODELS["iskra_am550"]


def scaler(model, code):
    table = MODELS.get(model)
    return table.get(code[2] << 8 | code[3], 0) if table else 0


def model_for(version, push_setup, labelled):
    """Tell the register map from the frame itself.

    version:    the list-version text the push carries ("KFM_001", "Kamstrup_V0001", ...) or None
    push_setup: OBIS text of the push-setup object in the capture list, or None
    labelled:   [(obis_text, value)] of the frame
    """
    if version:
        if version.startswith("KFM"):
            return "kaifa"
        if version.startswith("Kamstrup"):
            for obis, value in labelled:
                if obis.endswith(":96.1.1") and isinstance(value, str) and value.startswith("685"):
                    return "kamstrup_ct"
            return "kamstrup"
    if push_setup == "0-6:25.9.0":
        # Iskra AM550 and L+G E360 both push from 0-6:25.9.0 and scale alike.
        return "iskra_am550"
    if push_setup is not None and push_setup.startswith("0-") and push_setup.endswith(":25.9.0"):
        # L+G E450 and E570 share push setup 0-8:25.9.0 and the LGZ device name. In every capture
        # we have, the E450 also pushes a device serial (0-x:96.1.x); the E570 pushes none.
        for obis, _ in labelled:
            if ":96.1." in obis:
                return "lg_e450"
        return "lg_e570"
    return None


# ---- positional lists (no OBIS codes in the frame) ------------------------------------------

def _codes(*texts):
    return tuple(obis_bytes(t) for t in texts)


# Kaifa NO HAN lists (NVE), order as in amshan's kaifa.py: list 1 is the bare active power,
# list 2 adds identity, powers, currents and voltages, list 3 the clock and energy totals.
_KAIFA_HEAD = ("1-0:0.2.129", "0-0:96.1.0", "0-0:96.1.7",
               "1-0:1.7.0", "1-0:2.7.0", "1-0:3.7.0", "1-0:4.7.0")
_KAIFA_TAIL = ("0-0:1.0.0", "1-0:1.8.0", "1-0:2.8.0", "1-0:3.8.0", "1-0:4.8.0")
_KAIFA_3P = ("1-0:31.7.0", "1-0:51.7.0", "1-0:71.7.0", "1-0:32.7.0", "1-0:52.7.0", "1-0:72.7.0")
_KAIFA_1P = ("1-0:31.7.0", "1-0:32.7.0")

KAIFA_LAYOUTS = (
    _codes("1-0:1.7.0"),
    _codes(*(_KAIFA_HEAD + _KAIFA_1P)),
    _codes(*(_KAIFA_HEAD + _KAIFA_3P)),
    _codes(*(_KAIFA_HEAD + _KAIFA_1P + _KAIFA_TAIL)),
    _codes(*(_KAIFA_HEAD + _KAIFA_3P + _KAIFA_TAIL)),
)


def positional_layout(version, count):
    """OBIS codes (6 bytes each) for a list of `count` bare values, or None if unknown."""
    if version is not None and not version.startswith("KFM"):
        return None
    for layout in KAIFA_LAYOUTS:
        if len(layout) == count and (version is not None or count == 1):
            return layout
    return None
