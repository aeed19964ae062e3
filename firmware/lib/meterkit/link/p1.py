"""DSMR P1 telegrams on the wire: '/' header, data lines, '!' and a CRC16/ARC checksum.

    /ISK5\\2M550T-1012 CR LF  CR LF  1-0:1.8.1(002130.115*kWh) CR LF ... !56DD CR LF

The CRC covers '/' through '!' inclusive and is sent as four hex digits. DSMR 2.2/3 meters and
some gateways send a bare '!'; a few meters drop leading zeros ('!B9F'). A checksum cut short
('!21' where the meter sent '!2154') is a mismatch: on a lossy line, that is what damage looks like.

Lost bytes (a UART overrun, a loose cable) cost only the telegram they hit. Every telegram begins
with its header line and an empty line, and no data line is followed by an empty line, so a '/'
that begins such a pair inside an unfinished telegram, wherever the cut fell (mid-line, after a
CR, in the header, between '!' and CR LF), starts the next telegram: the one before it is handed
on without its '!' and refused as cut short (`format`). With its header intact, a telegram that
line noise filled with binary bytes is still a telegram (its CRC refuses it). And an end line
after some lines of text but no start is what is left of a telegram whose '/' was lost: counted.
Lost lines plus a copied '!' must not pass for a DSMR 2/3 telegram, so one without a CRC is taken
only with its whole start (`dsmr.decode_telegram`), and never on a line whose meter sent a CRC
before (`StreamDecoder`).
"""
from .. import PURE_PYTHON
from ..crc import crc16_arc
from ..errors import FormatError

MAX_TELEGRAM = 4096   # Fluvius e-MUCS telegrams reach ~3.5 KB

# Bytes a telegram may carry before '!' (1 in this table): printable ASCII, CR, LF, TAB, and STX,
# which Iskra meters put into their header ('/ISk5<STX>MIE5T-200'). Anything else means binary
# data, not P1. (Built by module code, which is freed after import; a function would stay.)
_TEXT = bytearray(256)
for _byte in list(range(0x20, 0x7F)) + [0x0D, 0x0A, 0x09, 0x02]:
    _TEXT[_byte] = 1
_TEXT = bytes(_TEXT)
del _byte


def frame_length(buf, start):
    """Length of the telegram starting at buf[start] (a '/'); 0 = need more bytes; -1 = not one.

    A telegram cut short (a new one began inside it, or its end line broke off) ends where the cut
    is: the frame has no '!', which the decoder reports."""
    size = len(buf)
    if start >= size:
        return 0
    if buf[start] != 0x2F:   # '/'
        return -1
    limit = min(size, start + MAX_TELEGRAM)
    bang = buf.find(b"!", start + 1, limit)
    end = limit if bang < 0 else bang
    cut = _next_header(buf, start + 1, end)
    stop = end if cut < 0 else cut
    if _has_binary(_TEXT, buf, start + 1, stop) and _header_end(buf, start, stop) < 0:
        return -1   # binary data, not P1
    if cut >= 0:
        return cut - start
    if bang < 0:
        return -1 if limit == start + MAX_TELEGRAM else 0
    n = _trailer_length(buf, start, bang + 1)
    return bang - start if n < 0 else n


def _header_end(buf, at, end):
    """Index after the header line at buf[at] ('/', text, LF) and the empty line after it; -1 if
    these are not (yet) there before `end`."""
    eol = buf.find(b"\n", at, end)
    if eol < 0 or _has_binary(_TEXT, buf, at + 1, eol):
        return -1
    i = eol + 1
    if i < end and buf[i] == 0x0D:
        i += 1
    return i + 1 if i < end and buf[i] == 0x0A else -1


def _next_header(buf, begin, end):
    """Where the first telegram start (a '/' beginning a header line and an empty line) lies in
    buf[begin:end]; -1 for none. A '/' inside a value ('(A/B)') starts no such pair."""
    at = buf.find(b"/", begin, end)
    while at >= 0 and _header_end(buf, at, end) < 0:
        at = buf.find(b"/", at + 1, end)
    return at


def _has_binary_python(text, buf, start, end):
    """True if buf[start:end] holds a byte the text table does not allow."""
    for i in range(start, end):
        if not text[buf[i]]:
            return True
    return False


_has_binary = _has_binary_python
BACKEND = "python"   # which scan runs here; meterkit.backends reports it
if PURE_PYTHON:
    pass   # benchmarks and path-equivalence tests want the plain loop
elif hasattr(bytes, "translate"):
    _TEXT_CHARS = bytes(i for i in range(256) if _TEXT[i])
    BACKEND = "cpython"

    def _has_binary(text, buf, start, end):
        # CPython: delete every text byte in C; anything left over is binary
        return bool(bytes(buf[start:end]).translate(None, _TEXT_CHARS))
else:
    try:
        from .p1_viper import has_binary as _has_binary
        BACKEND = "viper"
    except ImportError:   # a MicroPython build without the native emitter: stay with Python
        pass


def header_end(buf, at, end):
    """Index after the header line at buf[at] and the empty line after it; -1 if not there."""
    return _header_end(buf, at, end)


def holds_binary(buf, start, end):
    """True if buf[start:end] holds a byte that P1 text does not."""
    return _has_binary(_TEXT, buf, start, end)


def _trailer_length(buf, start, i):
    """After '!': up to four hex digits, then CR LF (or a bare LF)."""
    size = len(buf)
    digits_end = min(size, i + 4)
    while i < digits_end and buf[i] in b"0123456789ABCDEFabcdef":
        i += 1
    if i >= size:
        return 0
    if buf[i] == 0x0A:   # LF
        return i + 1 - start
    if buf[i] != 0x0D:   # CR
        return -1
    if i + 1 >= size:
        return 0
    return i + 2 - start if buf[i + 1] == 0x0A else -1


# An end line after at least this many bytes that no telegram start claimed: what is left of a
# telegram. A stray copy of a telegram's last bytes between two telegrams is shorter: noise.
ORPHAN_BODY = 64


def orphan_end_length(buf, start):
    """Framer for '!': an end line at a line start after ORPHAN_BODY bytes that no telegram start
    claimed, i.e. a telegram whose start was lost (line noise may have hit the rest of it too).
    Its length (the end line, or just the '!' when the line broke off), 0 = need more bytes,
    -1 = not that."""
    if start < ORPHAN_BODY or buf[start - 1] != 0x0A:
        return -1
    n = _trailer_length(buf, start, start + 1)
    return 1 if n < 0 else n


def refuse_orphan_end(line):
    raise FormatError("P1 telegram without its start: its '/' header line was lost")


def crc_fields(frame):
    """(stated, computed): the checksum text after '!' ('' when absent) and the CRC of '/'…'!'."""
    if isinstance(frame, str):
        frame = frame.encode()
    elif not isinstance(frame, bytes):
        frame = bytes(frame)
    bang = frame.find(b"!")
    if bang < 0:
        raise FormatError("P1 telegram has no '!' end marker (cut short?)")
    return stated_crc(frame, bang), crc16_arc(frame, 0, bang + 1)


def stated_crc(frame, bang):
    """The checksum text after the '!' at frame[bang] ('' when the telegram carries none)."""
    end = bang + 1
    while end < len(frame) and frame[end] not in b"\r\n":
        end += 1
    return "".join(chr(byte) for byte in frame[bang + 1:end]).strip()


def check_crc(frame):
    """True/False for a telegram with a checksum; None when it carries none we can judge."""
    stated, computed = crc_fields(frame)
    if not stated:
        return None
    try:
        return int(stated, 16) == computed   # accepts lowercase and unpadded ('B9F')
    except ValueError:
        return False


def __getattr__(name):
    # the encoder (simulator, tests) lives in dsmr_encode: the dongle only decodes, never loads it
    if name == "encode_telegram":
        from ..dsmr_encode import encode_telegram
        return encode_telegram
    raise AttributeError(name)

