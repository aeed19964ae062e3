"""CRC-16 hot loops in @micropython.viper: ~10x the table code on MicroPython.

Imported by crc.py only on MicroPython (elsewhere `import micropython` fails and crc.py falls
back). The 256-entry tables live in bytearrays read as 16-bit words.
"""
import micropython


def _table(poly):
    table = bytearray(512)
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table[2 * byte] = crc & 0xFF
        table[2 * byte + 1] = crc >> 8
    return table


_ARC = _table(0xA001)
_X25 = _table(0x8408)


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
