"""CRC-16 variants used on meter links.

CRC16/ARC guards DSMR P1 telegrams; CRC-16/X-25 guards HDLC headers and frames. Both functions
take (data, start, end) so framers check a frame in place. The fastest implementation this
runtime has is chosen at import, and BACKEND says which: our C module (custom firmware), viper
(MicroPython), `fastcrc` (the host), or the table-driven Python below, which runs everywhere.
"""


def _table(poly):
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


def _reflected(poly, init, xorout):
    table = _table(poly)

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


def _python():
    # P1: poly 0x8005 reflected, init 0; HDLC: 0x1021 reflected, init and xorout 0xFFFF
    return "python", _reflected(0xA001, 0, 0), _reflected(0x8408, 0xFFFF, 0xFFFF)


def _choose():
    from . import PURE_PYTHON
    if PURE_PYTHON:
        return _python()
    try:
        from meterkit_c import crc16_arc, crc16_x25   # takes (data, start, end) itself
        return "cmodule", crc16_arc, crc16_x25
    except ImportError:
        pass
    try:
        from .crc_viper import crc16_arc, crc16_x25
        return "viper", crc16_arc, crc16_x25
    except ImportError:
        pass
    try:
        from fastcrc.crc16 import arc, ibm_sdlc
        return "fastcrc", _sliced(arc), _sliced(ibm_sdlc)
    except ImportError:
        return _python()


BACKEND, crc16_arc, crc16_x25 = _choose()
