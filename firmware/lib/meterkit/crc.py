"""CRC-16 variants used on meter links.

CRC16/ARC guards DSMR P1 telegrams; CRC-16/X-25 guards HDLC headers and frames. Both are the
reflected polynomial 0x8005 (0xA001 reflected) / 0x1021 (0x8408 reflected), table driven.
"""


def _table(poly):
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_ARC = _table(0xA001)
_X25 = _table(0x8408)


def crc16_arc(data, start=0, end=None):
    """DSMR P1: init 0, no final xor."""
    crc = 0
    table = _ARC
    for i in range(start, len(data) if end is None else end):
        crc = (crc >> 8) ^ table[(crc ^ data[i]) & 0xFF]
    return crc


def crc16_x25(data, start=0, end=None):
    """HDLC HCS/FCS: init 0xFFFF, final xor 0xFFFF; sent little-endian."""
    crc = 0xFFFF
    table = _X25
    for i in range(start, len(data) if end is None else end):
        crc = (crc >> 8) ^ table[(crc ^ data[i]) & 0xFF]
    return crc ^ 0xFFFF
