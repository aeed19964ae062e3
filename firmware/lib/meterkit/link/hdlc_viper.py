"""HDLC frame checks in @micropython.viper (imported by hdlc.py on MicroPython only).

The same rules as hdlc._header, hdlc.frame_length and Reassembler._check, with the CRC-16/X-25
table of crc_viper. `check` only answers for good frames; for a bad one hdlc.py runs the plain
Python check, which raises the error with its message.
"""
import micropython

from meterkit.crc_viper import _X25


@micropython.viper
def _crc_ok(table: ptr8, buf: ptr8, begin: int, crc_at: int) -> int:
    crc = 0xFFFF
    i = begin
    while i < crc_at:
        j = ((crc ^ buf[i]) & 0xFF) << 1
        crc = (crc >> 8) ^ (table[j] | (table[j + 1] << 8))
        i += 1
    crc ^= 0xFFFF
    return int(buf[crc_at] == (crc & 0xFF) and buf[crc_at + 1] == (crc >> 8))


@micropython.viper
def _header(buf: ptr8, start: int, end: int) -> int:
    """length | after_control << 11 (hdlc._header packed); 0 need more, -1 not a header."""
    if start + 3 > end:
        return 0
    if (buf[start + 1] >> 4) != 0xA:
        return -1
    length = ((buf[start + 1] & 0x07) << 8) | buf[start + 2]
    if length < 7:
        return -1
    p = start + 3
    addresses = 0
    while addresses < 2:                  # destination, then source: 1-4 bytes, last bit 0 set
        last = p + 4
        while True:
            if p >= last:
                return -1
            if p >= end:
                return 0
            p += 1
            if buf[p - 1] & 1:
                break
        addresses += 1
    after_control = p + 1
    room = start + 1 + length - after_control
    if room < 2 or room == 3:
        return -1
    return length | (after_control << 11)


@micropython.viper
def _frame_length(buf: ptr8, start: int, end: int, table: ptr8) -> int:
    if start >= end:
        raise IndexError("index out of range")
    if buf[start] != 0x7E:
        return -1
    packed = int(_header(buf, start, end))
    if packed <= 0:
        return packed
    length = packed & 0x7FF
    after_control = packed >> 11
    if start + 1 + length > after_control + 2:             # an information field: HCS
        if after_control + 2 > end:
            return 0
        if not _crc_ok(table, buf, start + 1, after_control):
            return -1
    n = length + 1
    if start + n >= end:
        return 0
    return n if buf[start + n] == 0x7E else -1


@micropython.viper
def _check(frame: ptr8, size: int, table: ptr8) -> int:
    """info_start | fcs_at << 11 of a good frame (start 0, both flags); -1 for any fault."""
    if size < 8 or frame[0] != 0x7E:
        return -1
    packed = int(_header(frame, 0, size))
    if packed <= 0:
        return -1
    length = packed & 0x7FF
    after_control = packed >> 11
    if not (size == length + 1 or (size == length + 2 and frame[size - 1] == 0x7E)):
        return -1
    info_start = after_control
    if 1 + length > after_control + 2:
        if not _crc_ok(table, frame, 1, after_control):
            return -1
        info_start = after_control + 2
    if not _crc_ok(table, frame, 1, length - 1):
        return -1
    return info_start | ((length - 1) << 11)


def frame_length(buf, start):
    return _frame_length(buf, start, len(buf), _X25)


def check(frame):
    return _check(frame, len(frame), _X25)
