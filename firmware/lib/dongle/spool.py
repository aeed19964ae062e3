"""Store and forward: never lose a reading while the broker is away.

A bounded RAM queue spills its oldest items to a ring file on flash. The publisher replays with
peek() -> publish (QoS 1) -> pop() after the PUBACK, oldest first, each item once.

Ring file records (all big-endian):

    state 1 | length 2 | seq 4 | crc32 4 (of length, seq and payload) | payload

state LIVE (0xA5) becomes DEAD (0xA4) when the item is popped or dropped: one byte written in
place. seq numbers every item; the records from the oldest live one to the newest carry consecutive
numbers, and each one sits right after its predecessor, or at offset 0 when it did not fit before
the end. On open the file is scanned: a torn record (power cut mid-write) fails its CRC and is
discarded. What was still only in RAM is lost in a crash; flush() spills it first.

The dongle's sizes are in hw/__init__.py (SPOOL_RAM_ITEMS, SPOOL_FILE_BYTES: a few items in RAM,
a 512 KB ring file, > 10 minutes of DSMR5). Popping writes one byte in place (LittleFS rewrites
that block); while the broker keeps up, items never reach flash.
"""
import os

from . import lazy

try:
    from binascii import crc32
except ImportError:  # builds without binascii.crc32: the same CRC-32, bit by bit
    def crc32(data, crc=0):
        crc ^= 0xFFFFFFFF
        for byte in data:
            crc ^= byte
            for _ in range(8):
                crc = (crc >> 1) ^ (0xEDB88320 if crc & 1 else 0)
        return crc ^ 0xFFFFFFFF

LIVE = 0xA5
DEAD = 0xA4
HEADER = 11
MAX_ITEM = 4096
SCAN_CHUNK = 256


class Files:
    """The filesystem the spool writes to; pass another object with these methods as fs."""

    def open(self, path, mode):
        return open(path, mode)

    def mkdir(self, path):
        try:
            os.mkdir(path)
        except OSError:  # exists already
            pass


def _header(seq, item):
    body = len(item).to_bytes(2, "big") + seq.to_bytes(4, "big")
    check = crc32(item, crc32(body)) & 0xFFFFFFFF
    return bytes((LIVE,)) + body + check.to_bytes(4, "big")


def _read_record(f, offset, end):
    """(state, seq, payload) of a valid record at offset, else None."""
    f.seek(offset)
    header = f.read(HEADER)
    if len(header) < HEADER or header[0] not in (LIVE, DEAD):
        return None
    length = int.from_bytes(header[1:3], "big")
    if not 0 < length <= MAX_ITEM or offset + HEADER + length > end:
        return None
    payload = f.read(length)
    if crc32(payload, crc32(header[1:7])) & 0xFFFFFFFF != int.from_bytes(header[7:11], "big"):
        return None
    return header[0], int.from_bytes(header[3:7], "big"), payload


class Spool:
    def __init__(self, directory, ram_items=64, file_bytes=196608, fs=None):
        self.max_item = min(MAX_ITEM, file_bytes // 4 - HEADER)  # a full ring holds >= 4 items
        if self.max_item < 1:
            raise ValueError("file_bytes too small for a spool")
        self._fs = fs or Files()
        self._fs.mkdir(directory)
        self.path = directory + "/spool.ring"
        self.capacity = file_bytes
        self.ram_items = ram_items
        self.dropped = 0          # items lost to a full ring file (oldest first)
        self.last_error = None    # the last flash error, if writing failed
        self._ram = []            # [(seq, item)], all newer than anything in the file
        self._peeked = None       # seq of the item peek() returned
        self._cached = None       # (seq, payload) of the file's head, read once
        with self._open() as f:
            self._scan(f)
        self._seq = self._end_seq

    def __len__(self):
        return self._end_seq - self._head_seq + len(self._ram)

    # -- the queue -------------------------------------------------------------------------------

    def put(self, item):
        item = bytes(item)
        if not 0 < len(item) <= self.max_item:
            raise ValueError("a spool item is 1..%d bytes, not %d" % (self.max_item, len(item)))
        self._ram.append((self._seq, item))
        self._seq += 1
        if len(self._ram) > self.ram_items:
            self._spill(len(self._ram) - self.ram_items // 2)

    def flush(self):
        """Spill everything in RAM to flash (before a planned restart)."""
        self._spill(len(self._ram))

    def peek(self):
        """The oldest item, or None when empty."""
        if self._end_seq > self._head_seq:
            if self._cached is None or self._cached[0] != self._head_seq:
                with self._open() as f:
                    self._locate_head(f)
                if self._end_seq == self._head_seq:   # the file turned out damaged
                    return self.peek()
            seq, item = self._cached
        elif self._ram:
            seq, item = self._ram[0]
        else:
            return None
        self._peeked = seq
        return item

    def pop(self):
        """Remove the item peek() returned (unless it was dropped meanwhile)."""
        if self._peeked is None:
            raise IndexError("pop() without a peek()")
        seq, self._peeked = self._peeked, None
        if self._end_seq > self._head_seq:
            if seq == self._head_seq:
                with self._open() as f:
                    self._kill(f, self._locate_head(f))
        elif self._ram and self._ram[0][0] == seq:
            self._ram.pop(0)

    # -- the ring file ---------------------------------------------------------------------------

    def _open(self):
        try:
            return self._fs.open(self.path, "r+b")
        except OSError:  # first use
            self._fs.open(self.path, "wb").close()
            return self._fs.open(self.path, "r+b")

    def _scan(self, f, after=-1):
        """Find the oldest live record (seq > after) and the newest record of any state: at
        start and in a damaged file only, so its code is loaded for the call (spool_scan.py)."""
        lazy("spool_scan", "scan", self)(f, after)

    def _locate_head(self, f):
        """Offset of the head record (caching its payload); rescans a damaged file."""
        end = f.seek(0, 2)
        for offset in (self._head, 0):
            found = _read_record(f, offset, end)
            if found and found[0] == LIVE and found[1] == self._head_seq:
                self._head = offset
                self._cached = (self._head_seq, found[2])
                return offset
        lost_from = self._head_seq          # damaged in the middle: skip to the next good record
        self._scan(f, after=lost_from)
        self.dropped += self._head_seq - lost_from
        self._cached = None
        return None if self._head_seq == self._end_seq else self._locate_head(f)

    def _kill(self, f, offset):
        """Mark the head record DEAD and move the head on to its successor."""
        if offset is None:
            return
        f.seek(offset)
        f.write(bytes((DEAD,)))
        self._head = offset + HEADER + len(self._cached[1])
        self._head_seq += 1
        self._cached = None

    def _spill(self, count):
        try:
            with self._open() as f:
                while count and self._ram:
                    self._append(f, *self._ram[0])
                    self._ram.pop(0)
                    count -= 1
        except OSError as e:   # flash full or failing: keep RAM bounded, count what we lose
            self.last_error = "spool file: %s" % e
            while len(self._ram) > self.ram_items:
                self._ram.pop(0)
                self.dropped += 1

    def _append(self, f, seq, item):
        size = HEADER + len(item)
        start = self._tail
        if start + size > self.capacity:   # does not fit before the end: wrap to 0
            self._drop_overlapping(f, start, self.capacity)
            start = 0
        self._drop_overlapping(f, start, start + size)
        if self._end_seq == self._head_seq:
            self._head, self._head_seq = start, seq
        f.seek(start)
        f.write(_header(seq, item))   # two writes: no copy of the item with its header in front
        f.write(item)
        self._tail, self._end_seq = start + size, seq + 1

    def _drop_overlapping(self, f, start, stop):
        """Drop (oldest first) the live records that overlap [start, stop)."""
        while self._end_seq > self._head_seq:
            offset = self._locate_head(f)
            if offset is None or offset >= stop or offset + HEADER + len(self._cached[1]) <= start:
                return
            self._kill(f, offset)
            self.dropped += 1
