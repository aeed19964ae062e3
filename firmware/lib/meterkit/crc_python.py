"""CRC-16 where neither our C module nor viper runs: `fastcrc` on the host, else the table-driven
Python below, which runs everywhere (and which `meterkit.PURE_PYTHON` forces). Apart from crc.py
so that a MicroPython dongle, which has viper, never loads it."""


def _table(poly):
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


def _reflected(poly, init, xorout, table=None):
    table = table or _table(poly)

    def crc16(data, start=0, end=None):
        crc = init
        for i in range(start, len(data) if end is None else end):
            crc = (crc >> 8) ^ table[(crc ^ data[i]) & 0xFF]
        return crc ^ xorout
    return crc16


def _sliced(compiled):
    try:
        compiled(bytearray(1))   # fastcrc 0.5 reads any buffer: a slice is the one copy
    except TypeError:
        def crc16(data, start=0, end=None):
            if start or end is not None:
                data = memoryview(data)[start:end]
            return compiled(bytes(data))
        return crc16

    def crc16(data, start=0, end=None):   # noqa: F811
        return compiled(data[start:end] if start or end is not None else data)
    crc16.compiled = compiled   # (crc.crc16_x25_of)
    return crc16


def _python():
    # P1: poly 0x8005 reflected, init 0; HDLC: 0x1021 reflected, init and xorout 0xFFFF
    return "python", _reflected(0xA001, 0, 0), _reflected(0x8408, 0xFFFF, 0xFFFF)


def choose(pure_python):
    """(BACKEND, crc16_arc, crc16_x25)."""
    if not pure_python:
        try:
            from fastcrc.crc16 import arc, ibm_sdlc
            return "fastcrc", _sliced(arc), _sliced(ibm_sdlc)
        except ImportError:
            pass
    return _python()


def modbus(pure_python):
    """(backend, crc16_modbus): CRC-16/MODBUS (poly 0x8005 reflected, init 0xFFFF, no xorout)."""
    if not pure_python:
        try:
            from fastcrc.crc16 import modbus as compiled
            return "fastcrc", _sliced(compiled)
        except ImportError:
            pass
    return "python", _reflected(0xA001, 0xFFFF, 0)
