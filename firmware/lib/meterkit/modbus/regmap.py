"""Register maps as data: one text table per meter model (maps/<model>.py holds it in TABLE, so
it is compiled, frozen and shipped like any module; `parse` reads the same text from a file).

    model SDM630                     header lines: key value
    function 4                       3 holding, 4 input registers
    max_registers 80                 the model's limit per request (its protocol document)
    line 9600 8N1                    the factory line settings
    words big                        big: high word first (ABCD); little: low word first (CDAB)
    missing max                      optional: the type's largest value means "not available"
    # address type scale unit obis name
    0x0000 f32 0 V 1-0:32.7.0 voltage_l1
    0x000C f32 0 W 1-0:21.7.0/1-0:22.7.0 power_in_l1/power_out_l1

type: f32 (IEEE 754), u16 s16 u32 s32 u64 s64 (integers; scale is the power of ten they are
multiplied by, exactly). unit "-" for none. A pair `a/b` of codes and names splits a signed value
as meters in the harmonized profile report it: a >= 0 goes to a (b is 0), a < 0 goes to b as
its magnitude. Names are harmonized names where the profile has one (power_in, voltage_l1, …);
a name's quantity, for the polling intervals, is its prefix (voltage_l1 -> voltage).
"""
from ..exact import Exact
from . import float32

SIZES = {"f32": 2, "u16": 1, "s16": 1, "u32": 2, "s32": 2, "u64": 4, "s64": 4}
# model files in maps/ and the names people use for them
MODELS = ("sdm630", "sdm530", "sdm230", "sdm120", "sdm72dm", "abb_b23")
ALIASES = (("sdm72", "sdm72dm"), ("sdm72d", "sdm72dm"), ("sdm72d-m", "sdm72dm"), ("b23", "abb_b23"),
           ("abb-b23", "abb_b23"))


class Register:
    __slots__ = ("address", "type", "size", "scale", "unit", "obis", "name")

    def __init__(self, address, type, scale, unit, obis, name):
        self.address, self.type, self.size = address, type, SIZES[type]
        self.scale, self.unit, self.obis, self.name = scale, unit, obis, name

    def __repr__(self):
        return "Register(0x%04X %s %s)" % (self.address, self.type, self.name)


class Map:
    def __init__(self):
        self.model = self.maker = self.source = ""
        self.function = 4
        self.max_registers = 125
        self.line = "9600 8N1"
        self.words = "big"
        self.missing = None
        self.registers = []

    def register(self, name):
        for reg in self.registers:
            if name in reg.name.split("/"):
                return reg
        return None


def model_name(name):
    name = name.lower()
    for alias, model in ALIASES:
        if alias == name:
            return model
    return name


def load(model):
    """The built-in map of a model (see MODELS and ALIASES); ValueError for an unknown one."""
    model = model_name(model)
    if model not in MODELS:
        raise ValueError("unknown Modbus meter model %r (known: %s)" % (model, ", ".join(MODELS)))
    module = __import__("meterkit.modbus.maps." + model, None, None, ("TABLE",))
    return parse(module.TABLE)


def parse(text):
    """A Map from the table text; ValueError naming the line for anything malformed."""
    result = Map()
    number = 0
    for line in text.split("\n"):
        number += 1
        line = line.strip()
        if not line or line[0] == "#":
            continue
        words = line.split()
        try:
            if words[0][:2] in ("0x", "0X") or words[0].isdigit():
                result.registers.append(_register(words))
            else:
                _header(result, words[0], " ".join(words[1:]))
        except (ValueError, KeyError, IndexError) as e:
            raise ValueError("register map line %d: %s (%s)" % (number, e, line))
    if not result.registers:
        raise ValueError("register map has no registers")
    result.registers.sort(key=lambda reg: reg.address)   # tables may be joined from parts
    return result


def _header(result, key, value):
    if key in ("function", "max_registers"):
        setattr(result, key, int(value))
        if key == "function" and result.function not in (3, 4):
            raise ValueError("function must be 3 or 4")
        if key == "max_registers" and not 1 <= result.max_registers <= 125:
            raise ValueError("max_registers must be 1..125")
    elif key in ("model", "maker", "source", "line"):
        setattr(result, key, value)
    elif key == "words" and value in ("big", "little"):
        result.words = value
    elif key == "missing" and value == "max":
        result.missing = value
    else:
        raise ValueError("unknown header %r" % key)


def _register(words):
    if len(words) != 6:
        raise ValueError("a register line has 6 columns: address type scale unit obis name")
    address = int(words[0], 16) if words[0][:2] in ("0x", "0X") else int(words[0])
    kind, scale = words[1], int(words[2])
    if kind not in SIZES:
        raise ValueError("unknown type %r" % kind)
    if kind == "f32" and scale:
        raise ValueError("f32 registers take scale 0")
    obis, name = words[4], words[5]
    if obis.count("/") != name.count("/") or obis.count("/") > 1:
        raise ValueError("a split takes two codes and two names")
    if obis.count("/") and kind[0] == "u":
        raise ValueError("only signed values split")
    return Register(address, kind, scale, "" if words[3] == "-" else words[3], obis, name)


def value(reg, data, offset, words="big", missing=None):
    """The register's value from the response bytes at offset: an Exact, or None (NaN, infinity,
    or the "not available" pattern)."""
    size = 2 * reg.size
    if words == "little" and reg.size > 1:   # low word first: reverse the words, keep the bytes
        raw = bytearray(size)
        for i in range(reg.size):
            at = offset + 2 * (reg.size - 1 - i)
            raw[2 * i], raw[2 * i + 1] = data[at], data[at + 1]
    else:
        raw = data[offset:offset + size]
    n = int.from_bytes(bytes(raw), "big")
    kind = reg.type
    if kind == "f32":
        return float32.exact(n)
    bits = 16 * reg.size
    if kind[0] == "s":
        if missing and n == (1 << (bits - 1)) - 1:
            return None
        if n >> (bits - 1):
            n -= 1 << bits
    elif missing and n == (1 << bits) - 1:
        return None
    return Exact(n, reg.scale)


def add_values(reading, reg, found):
    """Add a register's value (found: Exact or None) to reading, split where the map says."""
    if "/" not in reg.obis:
        reading.add(reg.obis, found, reg.unit)
        return
    plus, minus = reg.obis.split("/")
    if found is None:
        reading.add(plus, None, reg.unit)
        reading.add(minus, None, reg.unit)
    elif found.mantissa >= 0:
        reading.add(plus, found, reg.unit)
        reading.add(minus, Exact(0, 0), reg.unit)
    else:
        reading.add(plus, Exact(0, 0), reg.unit)
        reading.add(minus, Exact(-found.mantissa, found.exponent), reg.unit)


def blocks(registers, max_registers):
    """[(address, count, [registers])]: runs of contiguous registers, each within max_registers;
    registers sorted by address first."""
    out = []
    for reg in sorted(registers, key=lambda r: r.address):
        if out:
            address, count, regs = out[-1]
            if reg.address == address + count and count + reg.size <= max_registers:
                out[-1] = (address, count + reg.size, regs + [reg])
                continue
        out.append((reg.address, reg.size, [reg]))
    return out
