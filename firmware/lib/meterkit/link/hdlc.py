"""DLMS HDLC frames as meters push them (IEC 62056-46).

    7E | format (2) | dest addr (1-4) | src addr (1-4) | control | HCS (2) | information | FCS (2) | 7E

* format: 4 bits frame type 0xA, the segmentation bit S (0x08 of the first byte), 11 bits length
  counted from the format field through the FCS (flags excluded). No byte stuffing.
* An address ends with the byte whose lowest bit is 1.
* HCS covers format..control, FCS covers format..information; both CRC-16/X-25, little-endian.
  A frame without an information field carries no HCS, only the FCS.
* The first segment's information field starts with the LLC header E6 E7 00 (E6 E6 00 also seen).
  Frames with S set are followed by more segments of the same APDU; the frame without S ends it.
  L+G meters put the LLC only on the first general-block-transfer block and send each block as
  its own frame, or, when it is long, as its own run of segments. So with nothing pending, an
  unsegmented frame without LLC is taken as a whole APDU, and a segmented one whose information
  starts like an APDU (a GBT block E0 .. .. .. 00 00, glo-ciphering DB 08, a data-notification 0F
  with its date-time 00/0C/09 0C) begins one; any other segment without its first is refused.
* Pushed UI frames carry no sequence numbers: a segment that begins with an LLC header while
  another APDU is pending is taken as a new APDU (so a continuation whose data happens to begin
  with E6 E7 00 at a segment boundary would be misread; the FCS-checked stream makes that rare).
  The dropped APDU is reported (`Reassembler.lost`), and so is one a frame that fails its check
  breaks: that frame's error counts it.

Meters often share one flag between consecutive frames, so `frame_length` counts from the opening
flag through the FCS and leaves the closing flag to serve as the next frame's opening flag.
"""
from sys import implementation

from meterkit import PURE_PYTHON
from meterkit.crc import crc16_x25
from meterkit.errors import CrcError, DecodeError, FormatError

FLAG = 0x7E
MAX_APDU = 4096
MAX_FRAME_LENGTH = 0x7FF  # the 11-bit length field
SEGMENTED = 0x08  # in the first format byte
CONTROL_MORE = 0x03  # UI frame, poll/final clear: more segments follow
CONTROL_LAST = 0x13  # UI frame, poll/final set
LLC_HEADERS = (b"\xe6\xe7\x00", b"\xe6\xe6\x00")
DEFAULT_ADDRESS = (b"\x41", b"\x08\x83")  # (destination, source) as on the wire
DEFAULT_MAX_INFO = 128  # the IEC 62056-46 default maximum information field length
MIN_LENGTH = 7  # format 2 + addresses 1+1 + control 1 + FCS 2


def _address_end(buf, pos, end):
    """Index after the address starting at `pos`; 0 when bytes are missing, -1 if over 4 bytes."""
    for i in range(pos, pos + 4):
        if i >= end:
            return 0
        if buf[i] & 1:
            return i + 1
    return -1


def _header(buf, start, end):
    """(frame length field, index of HCS or FCS after the control byte); 0 or -1 like frame_length."""
    if start + 3 > end:
        return 0, 0
    if buf[start + 1] >> 4 != 0xA:
        return -1, 0
    length = ((buf[start + 1] & 0x07) << 8) | buf[start + 2]
    if length < MIN_LENGTH:
        return -1, 0
    dest_end = _address_end(buf, start + 3, end)
    if dest_end <= 0:
        return dest_end, 0
    src_end = _address_end(buf, dest_end, end)
    if src_end <= 0:
        return src_end, 0
    after_control = src_end + 1
    room = start + 1 + length - after_control  # bytes declared after the control byte
    if room < 2 or room == 3:
        return -1, 0  # no room for the FCS, or for HCS + FCS
    return length, after_control


def _has_hcs(start, length, after_control):
    """Only frames with an information field carry an HCS."""
    return start + 1 + length > after_control + 2


def _frame_length_python(buf, start):
    """Bytes from the opening flag through the FCS (> 0), 0 to wait for more, -1 if no frame here."""
    end = len(buf)
    if buf[start] != FLAG:
        return -1
    length, after_control = _header(buf, start, end)
    if length <= 0:
        return length
    if _has_hcs(start, length, after_control):
        if after_control + 2 > end:
            return 0
        if not _crc_matches(buf, start + 1, after_control):
            return -1
    n = length + 1
    if start + n >= end:
        return 0
    return n if buf[start + n] == FLAG else -1


def _crc_matches(buf, begin, crc_at):
    crc = crc16_x25(buf, begin, crc_at)
    return buf[crc_at] == crc & 0xFF and buf[crc_at + 1] == crc >> 8


def _starts_with_llc(buf, pos, end):
    if pos + 3 > end:
        return False
    for llc in LLC_HEADERS:
        if buf[pos] == llc[0] and buf[pos + 1] == llc[1] and buf[pos + 2] == llc[2]:
            return True
    return False


def _starts_like_apdu(buf, pos, end):
    """GBT block (E0, control, block number, acknowledged 0), glo-ciphering (DB 08) or
    data-notification (0F, invoke id, date-time absent or 12 bytes)."""
    if pos + 7 > end:
        return False
    tag = buf[pos]
    if tag == 0xE0:
        return buf[pos + 4] == 0 and buf[pos + 5] == 0
    if tag == 0xDB:
        return buf[pos + 1] == 8
    when = buf[pos + 5]
    return tag == 0x0F and (when in (0x00, 0x0C) or (when == 0x09 and buf[pos + 6] == 0x0C))


class Reassembler:
    """Checks HDLC frames and joins segmented ones into APDUs; holds at most MAX_APDU bytes."""

    CONTIGUOUS = False   # flags and stray bytes come between frames: a gap means nothing

    def __init__(self):
        self._pending = None  # bytearray of the APDU so far while segments are outstanding
        self.lost = None      # why an unfinished APDU was dropped (a new one began), to count

    def lose(self, reason):
        """Drop the unfinished APDU; the message that says so (None if nothing was pending)."""
        pending, self._pending = self._pending, None
        if pending is None or reason is None:
            return None
        return ("HDLC: an unfinished segmented APDU (%d bytes) was dropped: %s"
                % (len(pending), reason))

    def push(self, frame):
        """One frame (from its opening flag; closing flag optional) -> the APDU when complete."""
        try:
            info_start, info_end = _check(frame)
        except DecodeError:
            self._pending = None   # most likely one of its segments: the APDU is broken
            raise
        if info_start == info_end:
            return None  # a frame without information carries no data
        segmented = frame[1] & SEGMENTED
        begin = info_start
        if _starts_with_llc(frame, info_start, info_end):
            begin += 3
            self.lost = self.lose("a new APDU began before its last segment")
        elif self._pending is None and segmented and not _starts_like_apdu(frame, begin, info_end):
            raise FormatError("HDLC: a continuation segment arrived without its first segment")
        if self._pending is None:
            return self._start(frame, begin, info_end, segmented)
        if len(self._pending) + info_end - info_start > MAX_APDU:
            self._pending = None
            raise FormatError("HDLC: segmented APDU longer than %d bytes; dropped" % MAX_APDU)
        self._pending.extend(frame[info_start:info_end])
        return None if segmented else self._finish()

    def _start(self, frame, begin, end, segmented):
        if not segmented:
            return bytes(frame[begin:end])
        self._pending = bytearray(frame[begin:end])
        return None

    def _finish(self):
        apdu = bytes(self._pending)
        self._pending = None
        return apdu


def _check_python(frame):
    """(start, end) of the information field after checking structure, HCS and FCS."""
    size = len(frame)
    if size < MIN_LENGTH + 1 or frame[0] != FLAG:
        raise FormatError("HDLC: a frame starts with 0x7E and has at least 8 bytes")
    length, after_control = _header(frame, 0, size)
    if length <= 0:
        raise FormatError("HDLC: malformed frame header (format type or addresses)")
    if not (size == length + 1 or (size == length + 2 and frame[size - 1] == FLAG)):
        raise FormatError("HDLC: frame is %d bytes but its length field says %d"
                          % (size, length + 2))
    fcs_at = length - 1
    if _has_hcs(0, length, after_control):
        if not _crc_matches(frame, 1, after_control):
            raise CrcError("HDLC header checksum (HCS) mismatch")
        info_start = after_control + 2
    else:
        info_start = after_control
    if not _crc_matches(frame, 1, fcs_at):
        raise CrcError("HDLC frame checksum (FCS) mismatch")
    return info_start, fcs_at


# CRC-16/X-25 over data and its own (little-endian) checksum always gives this: one CRC call
# checks a field, without reading the checksum bytes in Python.
GOOD_RESIDUE = 0x0F47


def _header_pattern(re):
    """flag, format type 0xA, length, two addresses (0-3 bytes with bit 0 clear, then one with it
    set), control: one match finds where the control byte ends."""
    even = b"".join(b"\\x%02x" % i for i in range(0, 256, 2))
    odd = b"".join(b"\\x%02x" % i for i in range(1, 256, 2))
    address = b"[" + even + b"]{0,3}[" + odd + b"]"
    return re.compile(b"\\x7e[\\xa0-\\xaf]." + address + address + b".", re.DOTALL)


def _frame_length_cpython(buf, start):
    """_frame_length_python with the header read in one match; anything but a whole header
    (no frame, or not all of it here yet) goes the plain way, which tells the two apart."""
    head = _HEADER.match(buf, start)
    if head is None:
        if start + 3 <= len(buf) and buf[start + 1] >> 4 != 0xA:
            return -1   # (mostly a frame's closing flag, the next one's opening flag after it)
        return _frame_length_python(buf, start)
    length = (buf[start + 1] & 0x07) << 8 | buf[start + 2]
    after_control = head.end()
    room = start + 1 + length - after_control
    if length < MIN_LENGTH or room < 2 or room == 3:
        return -1
    if room > 2:                                       # an information field: an HCS
        if after_control + 2 > len(buf):
            return 0
        if _x25(buf[start + 1:after_control + 2]) != GOOD_RESIDUE:
            return -1
    n = length + 1
    if start + n >= len(buf):
        return 0
    return n if buf[start + n] == FLAG else -1


def _check_cpython(frame):
    """_check_python for good frames, the header read in one match; a bad one goes the plain
    way, which names the fault."""
    size = len(frame)
    head = _HEADER.match(frame)
    if head is None or size < MIN_LENGTH + 1:
        return _check_python(frame)
    length = (frame[1] & 0x07) << 8 | frame[2]
    info_start = head.end()
    room = 1 + length - info_start
    if length < MIN_LENGTH or room < 2 or room == 3 or not (
            size == length + 1 or (size == length + 2 and frame[size - 1] == FLAG)):
        return _check_python(frame)
    if room > 2:
        if _x25(frame[1:info_start + 2]) != GOOD_RESIDUE:
            return _check_python(frame)
        info_start += 2
    if _x25(frame[1:length + 1]) != GOOD_RESIDUE:
        return _check_python(frame)
    return info_start, length - 1


# The framer and the frame check run in viper where there is one, with a regular expression on
# CPython (same answers, proven by tests/test_fast_paths.py); BACKEND says which.
frame_length, _check = _frame_length_python, _check_python
BACKEND = "python"
if PURE_PYTHON:
    pass   # benchmarks and path-equivalence tests want the plain code
elif implementation.name != "micropython":   # (MicroPython's re matches from no offset)
    import re
    from meterkit.crc import crc16_x25_of as _x25
    _HEADER = _header_pattern(re)
    frame_length, _check = _frame_length_cpython, _check_cpython
    BACKEND = "cpython"
else:
    try:
        from meterkit.link import hdlc_viper

        def _check(frame):
            checked = hdlc_viper.check(frame)
            if checked < 0:                 # a bad frame: the Python check names the fault
                return _check_python(frame)
            return checked & 0x7FF, checked >> 11

        frame_length = hdlc_viper.frame_length
        BACKEND = "viper"
    except ImportError:   # a MicroPython build without the native emitter
        pass


def _check_address(address):
    if len(address) < 1 or len(address) > 4:
        raise FormatError("HDLC address must be 1 to 4 bytes")
    for i in range(len(address)):
        if bool(address[i] & 1) != (i == len(address) - 1):
            raise FormatError("HDLC address: only its last byte may (and must) have bit 0 set")


def _frame(info, dest, src, segmented):
    """One complete frame, opening and closing flag included."""
    header_size = 2 + len(dest) + len(src) + 1
    length = header_size + (2 if info else 0) + len(info) + 2
    out = bytearray()
    out.append(FLAG)
    out.append(0xA0 | (SEGMENTED if segmented else 0) | (length >> 8))
    out.append(length & 0xFF)
    out.extend(dest)
    out.extend(src)
    out.append(CONTROL_MORE if segmented else CONTROL_LAST)
    if info:
        _append_crc(out, 1)
        out.extend(info)
    _append_crc(out, 1)
    out.append(FLAG)
    return bytes(out)


def _append_crc(out, begin):
    crc = crc16_x25(out, begin, len(out))
    out.append(crc & 0xFF)
    out.append(crc >> 8)


def encode(apdu, max_info=DEFAULT_MAX_INFO, address=DEFAULT_ADDRESS, llc=True):
    """APDU -> list of frames (each with both flags), LLC first, segmented beyond max_info bytes.

    `address` is (destination, source), each as its 1-4 wire bytes (last byte has bit 0 set).
    llc=False leaves the LLC header out, as L+G meters do on every GBT block but the first.
    """
    dest, src = address
    _check_address(dest)
    _check_address(src)
    if len(apdu) > MAX_APDU:
        raise FormatError("HDLC: APDU longer than %d bytes" % MAX_APDU)
    largest = MAX_FRAME_LENGTH - (2 + len(dest) + len(src) + 1 + 4)
    if max_info < 3 or max_info > largest:
        raise FormatError("HDLC: max_info must be 3..%d for these addresses" % largest)
    info = (LLC_HEADERS[0] if llc else b"") + bytes(apdu)
    frames = []
    for begin in range(0, len(info), max_info):
        last = begin + max_info >= len(info)
        frames.append(_frame(info[begin:begin + max_info], dest, src, not last))
    return frames
