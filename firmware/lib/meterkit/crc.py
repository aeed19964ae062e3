"""CRC-16 variants used on meter links.

CRC16/ARC guards DSMR P1 telegrams; CRC-16/X-25 guards HDLC headers and frames. Both functions
take (data, start, end) so framers check a frame in place. The table-driven Python below runs
everywhere; where a compiled implementation is importable it is used instead (our C module on
custom firmware, `fastcrc` on the host), and BACKEND says which.
"""


def _table(poly):
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


def _reflected(table, init, xorout):
    def crc16(data, start=0, end=None):
        crc = init
        for i in range(start, len(data) if end is None else end):
            crc = (crc >> 8) ^ table[(crc ^ data[i]) & 0xFF]
        return crc ^ xorout
    return crc16


def _sliced(compiled):
    def crc16(data, start=0, end=None):
        if start or end is not None:
            data = memoryview(data)[start:end]
        return compiled(bytes(data))
    return crc16


try:
    from meterkit_c import crc16_arc as _arc, crc16_x25 as _x25
    BACKEND = "cmodule"
except ImportError:
    try:
        from fastcrc.crc16 import arc as _arc, ibm_sdlc as _x25
        BACKEND = "fastcrc"
    except ImportError:
        _arc = _x25 = None
        BACKEND = "python"

if _arc is None:
    crc16_arc = _reflected(_table(0xA001), 0, 0)            # P1: poly 0x8005 reflected, init 0
    crc16_x25 = _reflected(_table(0x8408), 0xFFFF, 0xFFFF)  # HDLC: 0x1021 reflected, init/xorout 0xFFFF
else:
    crc16_arc = _sliced(_arc)
    crc16_x25 = _sliced(_x25)
