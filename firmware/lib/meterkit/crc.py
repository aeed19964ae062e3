"""CRC-16 variants used on meter links.

CRC16/ARC guards DSMR P1 telegrams; CRC-16/X-25 guards HDLC headers and frames; CRC-16/MODBUS
guards Modbus RTU frames (ARC's polynomial started at 0xFFFF). The functions take (data, start,
end) so framers check a frame in place. The fastest implementation this runtime has is chosen at
import, and BACKEND (MODBUS_BACKEND for Modbus) says which: our C module (custom firmware), viper
(MicroPython), `fastcrc` (the host), or table-driven Python (crc_python.py), which runs everywhere.
Module code chooses: it is freed after import, where a function would stay on the heap.
"""
from . import PURE_PYTHON

BACKEND = None
if not PURE_PYTHON:
    try:
        from meterkit_c import crc16_arc, crc16_x25   # takes (data, start, end) itself
        BACKEND = "cmodule"
    except ImportError:
        try:
            from .crc_viper import crc16_arc, crc16_x25
            BACKEND = "viper"
        except ImportError:
            pass
if BACKEND is None:
    from .crc_python import choose
    BACKEND, crc16_arc, crc16_x25 = choose(PURE_PYTHON)
    del choose
# crc16_x25 of a whole bytes-like object, for callers that slice for themselves (hdlc on the
# host): fastcrc's own function, without the wrapper that slices
crc16_x25_of = getattr(crc16_x25, "compiled", crc16_x25)

# Modbus: viper wherever MicroPython runs (the C module has no Modbus CRC; frames are short)
MODBUS_BACKEND = None
if not PURE_PYTHON:
    try:
        from .crc_viper import crc16_modbus
        MODBUS_BACKEND = "viper"
    except ImportError:
        pass
if MODBUS_BACKEND is None:
    from .crc_python import modbus
    MODBUS_BACKEND, crc16_modbus = modbus(PURE_PYTHON)
    del modbus
