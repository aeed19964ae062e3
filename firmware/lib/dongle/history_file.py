"""dongle.history's rare parts: the page's points and the file the day and month rings go to.

Loaded by History for the call and forgotten after (dongle.lazy): a request for the page, a
5-minute slot closing, a start. The rings themselves stay in history.py with add(), which runs
for every reading.
"""
import os
import struct
import time
from array import array

from meterkit.exact import Exact

from .history import EMPTY

MAGIC = b"MKH1"
# MicroPython on the ESP32 counts from 2000-01-01; the API speaks Unix time.
EPOCH = 946684800 if time.gmtime(0)[0] == 2000 else 0


def points(history, name):
    """[[epoch_s, value], ...] oldest first: hour and day in W, month in kWh (exact)."""
    if name == "hour":
        return _points(history.hour)
    if name == "day":
        return _points(history.day)
    if name == "month":
        return _points(history.month, -3)    # Wh -> kWh, exactly
    raise ValueError("range must be hour, day or month")


def _points(ring, scale=0):
    if ring.last is None:
        return []
    out = []
    for slot in range(ring.last - ring.size + 1, ring.last + 1):
        value = ring.values[slot % ring.size]
        if value != EMPTY:
            out.append([slot * ring.step + EPOCH, Exact(value, scale) if scale else value])
    return out


def save(history):
    temp = history.path + ".tmp"
    with open(temp, "wb") as f:
        f.write(MAGIC)
        for ring in (history.day, history.month):
            f.write(struct.pack("<i", EMPTY if ring.last is None else ring.last))
            f.write(ring.values)
        start = history.day_start_wh
        f.write(struct.pack("<q", EMPTY if start is None else start))
    os.rename(temp, history.path)


def load(history):
    try:
        with open(history.path, "rb") as f:
            data = f.read()
    except OSError:
        return
    day, month = history.day, history.month
    size = 4 + 8 + 4 * (day.size + month.size) + 8
    if len(data) != size or data[:4] != MAGIC:
        return                  # another version or a torn file: start empty
    pos = 4
    for ring in (day, month):
        last = struct.unpack("<i", data[pos:pos + 4])[0]
        ring.last = None if last == EMPTY else last
        ring.values = array("i", data[pos + 4:pos + 4 + 4 * ring.size])
        pos += 4 + 4 * ring.size
    start = struct.unpack("<q", data[pos:pos + 8])[0]
    if start != EMPTY and month.last is not None:
        history.day_start_wh = start
        history.latest_wh = start + month.values[month.last % month.size]
