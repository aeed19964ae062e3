"""CRC-16 hot loops in @micropython.viper: ~10x the table code on MicroPython (ARC, X.25, Modbus).

Imported by crc.py only on MicroPython (elsewhere `import micropython` fails and crc.py falls
back). The 256-entry tables live in bytearrays read as 16-bit words; module code builds them
(it is freed after import, a function would stay on the heap).
"""
import micropython

_ARC = bytearray(512)   # poly 0x8005 reflected
_X25 = bytearray(512)   # poly 0x1021 reflected
for _table, _poly in ((_ARC, 0xA001), (_X25, 0x8408)):
    for _byte in range(256):
        _value = _byte
        for _ in range(8):
            _value = (_value >> 1) ^ _poly if _value & 1 else _value >> 1
        _table[2 * _byte] = _value & 0xFF
        _table[2 * _byte + 1] = _value >> 8
del _table, _poly, _byte, _value, _


@micropython.viper
def _crc(table: ptr8, data: ptr8, start: int, end: int, crc: int) -> int:
    i = start
    while i < end:
        j = ((crc ^ data[i]) & 0xFF) << 1
        crc = (crc >> 8) ^ (table[j] | (table[j + 1] << 8))
        i += 1
    return crc


def crc16_arc(data, start=0, end=None):
    return _crc(_ARC, data, start, len(data) if end is None else end, 0)


def crc16_x25(data, start=0, end=None):
    return _crc(_X25, data, start, len(data) if end is None else end, 0xFFFF) ^ 0xFFFF


def crc16_modbus(data, start=0, end=None):
    """CRC-16/MODBUS: ARC's table, started at 0xFFFF, no final xor."""
    return _crc(_ARC, data, start, len(data) if end is None else end, 0xFFFF)
