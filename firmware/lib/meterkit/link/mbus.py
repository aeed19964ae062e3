"""Wired M-Bus long frames (EN 13757-2) carrying one DLMS APDU over several frames.

    68 | L | L | 68 | C | A | CI | STSAP | DTSAP | APDU part | CS | 16

* L counts the bytes from C through the end of the data (so the frame is L + 6 bytes); CS is the
  sum of C..data modulo 256; 0x16 ends the frame.
* EN 13757-1 reserves CI values 0x00-0x1F for DLMS. There the CI field is the segmentation
  header: bits 0-3 are the segment number (0 first, counting up modulo 16), bit 4 (0x10) marks the
  last segment, bits 5-7 are zero. The Austrian EVN/Netz NÖ and TINETZ Kaifa MA309 pushes send
  CI 0x00 then 0x11: segment 0, then segment 1 which is the last.
* Every segment carries the two transport bytes STSAP and DTSAP (0x01 0x67 in both samples)
  before its APDU part; they are dropped. The APDU is the concatenation of the parts, typically a
  general-glo-ciphering (0xDB) APDU of 260-280 bytes split as 245 + rest (L = 0xFA, then short).
* The segments of an APDU come back to back: bytes skipped between two of them mean a frame was
  lost (the caller says so with `lose`), which matters as SC 0x20 frames carry no tag that would
  catch one APDU's first segment spliced to the next one's last. A dropped unfinished APDU is
  reported (`lost`); a frame that fails its check drops it too, counted by that frame's error.
"""
from meterkit.errors import CrcError, DecodeError, FormatError

START = 0x68
STOP = 0x16
MAX_APDU = 4096
LAST_SEGMENT = 0x10
MIN_L = 3 + 2  # C, A, CI + STSAP, DTSAP
MAX_L = 255
CONTROL = 0x53  # SND_UD, as the meters above send it
ADDRESS = 0xFF  # broadcast
TRANSPORT = b"\x01\x67"  # STSAP, DTSAP of the samples
DEFAULT_MAX_DATA = 247  # data bytes after CI per frame (L = 0xFA, as the meters send)


def frame_length(buf, start):
    """Bytes of the long frame at `start` including the stop byte; 0 to wait, -1 if no frame."""
    available = len(buf) - start
    if buf[start] != START:
        return -1
    if available > 1 and buf[start + 1] < 3:
        return -1  # a long frame has at least C, A and CI
    if available > 2 and buf[start + 2] != buf[start + 1]:
        return -1  # the two L bytes differ
    if available > 3 and buf[start + 3] != START:
        return -1
    if available < 4:
        return 0
    n = buf[start + 1] + 6
    if n > available:
        return 0
    return n if buf[start + n - 1] == STOP else -1


def _checksum(buf, begin, end):
    total = 0
    for i in range(begin, end):
        total += buf[i]
    return total & 0xFF


class Reassembler:
    """Checks long frames and joins DLMS segments in order; holds at most MAX_APDU bytes."""

    CONTIGUOUS = True   # nothing comes between an APDU's segments

    def __init__(self):
        self._pending = None  # bytearray of the APDU so far
        self._next = 0  # segment number expected next
        self.lost = None  # why an unfinished APDU was dropped (a new one began), to count

    def lose(self, reason):
        """Drop the unfinished APDU; the message that says so (None if nothing was pending)."""
        pending, self._pending = self._pending, None
        if pending is None or reason is None:
            return None
        return "M-Bus: an unfinished APDU (%d bytes) was dropped: %s" % (len(pending), reason)

    def push(self, frame):
        """One long frame -> the APDU when its last segment arrives, else None."""
        try:
            _check(frame)
        except DecodeError:
            self._pending = None   # most likely one of its segments: the APDU is broken
            raise
        ci = frame[6]
        if ci > 0x1F:
            raise FormatError("M-Bus: CI 0x%02X is not a DLMS segment (0x00-0x1F)" % ci)
        number = ci & 0x0F
        part = frame[9:len(frame) - 2]
        # segment numbers wrap after 15, so 0 starts a new APDU only where 0 is not due
        if self._pending is None or (number == 0 and self._next != 0):
            return self._first(number, part, ci & LAST_SEGMENT)
        if number != self._next:
            self._pending = None
            raise FormatError("M-Bus: segment %d arrived where %d was due; APDU dropped"
                              % (number, self._next))
        if len(self._pending) + len(part) > MAX_APDU:
            self._pending = None
            raise FormatError("M-Bus: segmented APDU longer than %d bytes; dropped" % MAX_APDU)
        self._pending.extend(part)
        return self._advance(ci & LAST_SEGMENT)

    def _first(self, number, part, last):
        """Segment 0 starts an APDU; a pending one it interrupts is dropped and reported."""
        self.lost = self.lose("a new APDU began before its last segment")
        if number != 0:
            raise FormatError("M-Bus: segment %d arrived without segment 0" % number)
        self._pending = bytearray(part)
        self._next = 0
        return self._advance(last)

    def _advance(self, last):
        if not last:
            self._next = (self._next + 1) & 0x0F
            return None
        apdu = bytes(self._pending)
        self._pending = None
        return apdu


def _check(frame):
    size = len(frame)
    if size < MIN_L + 6 or frame[0] != START or frame[3] != START:
        raise FormatError("M-Bus: a long frame starts 68 L L 68 and carries CI, STSAP and DTSAP")
    if frame[1] != frame[2] or size != frame[1] + 6:
        raise FormatError("M-Bus: length bytes %d/%d do not match the %d-byte frame"
                          % (frame[1], frame[2], size))
    if frame[size - 1] != STOP:
        raise FormatError("M-Bus: frame does not end with the stop byte 0x16")
    if _checksum(frame, 4, size - 2) != frame[size - 2]:
        raise CrcError("M-Bus checksum mismatch")


def encode(apdu, max_data=DEFAULT_MAX_DATA):
    """APDU -> list of long frames, as the meters send it (STSAP/DTSAP in every segment).

    `max_data` is the data bytes after CI per frame, the two transport bytes included.
    """
    if max_data < 3 or max_data > MAX_L - 3:
        raise FormatError("M-Bus: max_data must be 3..%d" % (MAX_L - 3))
    if len(apdu) > MAX_APDU:
        raise FormatError("M-Bus: APDU longer than %d bytes" % MAX_APDU)
    step = max_data - len(TRANSPORT)
    frames = []
    begin = 0
    while True:
        part = apdu[begin:begin + step]
        begin += step
        last = begin >= len(apdu)
        ci = (len(frames) & 0x0F) | (LAST_SEGMENT if last else 0)
        frames.append(_frame(ci, part))
        if last:
            return frames


def _frame(ci, part):
    body = bytearray((CONTROL, ADDRESS, ci))
    body.extend(TRANSPORT)
    body.extend(part)
    out = bytearray((START, len(body), len(body), START))
    out.extend(body)
    out.append(_checksum(body, 0, len(body)))
    out.append(STOP)
    return bytes(out)
