"""StreamDecoder: bytes as a UART delivers them in, decoded Readings and rejections out.

The framing is detected from the stream itself: every frame kind starts with its own byte ('/'
P1 text, 0x7E HDLC, 0x68 M-Bus long frame, 0xDB general-glo-ciphering as Smarty sends it), and
each framer confirms or refuses a candidate start. Bytes between frames are skipped and counted.
The buffer is bounded, so a noisy line can never exhaust memory.
"""
from .errors import CrcError, DecodeError, FormatError
from .reading import Reading, error_json

MAX_BUFFER = 8192
# Which framings to look for. A dongle configured for one meter type passes just its own, so the
# layers it never needs are never imported (each costs heap on the ESP32).
FRAMINGS = ("p1", "glo", "hdlc", "mbus")
# Bare APDUs have no framing of their own; captures of them are decoded at the end of the input.
_BARE_APDU = (b"\xe6\xe7\x00", b"\xe6\xe6\x00", b"\x0f", b"\xe0")
COUNTERS = ("ok", "crc", "auth", "replay", "format")


class StreamDecoder:
    def __init__(self, key=None, auth_key=None, max_buffer=MAX_BUFFER, framings=FRAMINGS):
        self.key, self.auth_key = key, auth_key
        self._security = self._apdu = None
        self.max_buffer = max_buffer
        self.buf = bytearray()
        self.scan_from = 0          # bytes before this were already refused as frame starts
        self.counts = dict((name, 0) for name in COUNTERS)
        self.skipped = 0            # garbage bytes between frames
        self.last_error = None
        self.dlms = "hdlc" in framings or "mbus" in framings
        self._framers = {}          # first byte of a frame -> (frame_length, handler)
        for name in framings:
            setup = getattr(self, "_setup_" + name, None)
            if setup is None:
                raise ValueError("unknown framing %r (known: %s)" % (name, ", ".join(FRAMINGS)))
            first, frame_length, handler = setup()
            self._framers[first] = (frame_length, handler)

    @property
    def security(self):
        """Keys, tag checks and the replay guard; created on first use."""
        if self._security is None:
            from .security import Security
            self._security = Security(self.key, self.auth_key)
        return self._security

    @property
    def apdu(self):
        if self._apdu is None:
            from .dlms.apdu import ApduDecoder
            self._apdu = ApduDecoder(self.security)
        return self._apdu

    def _setup_p1(self):
        from .link import p1
        from . import dsmr
        self._p1_link, self._dsmr = p1, dsmr
        return 0x2F, p1.frame_length, self._p1

    def _setup_glo(self):
        from .link import p1
        from . import dsmr, security
        self._p1_link, self._dsmr = p1, dsmr
        return 0xDB, security.glo_frame_length, self._glo

    def _setup_hdlc(self):
        from .link import hdlc
        self.hdlc = hdlc.Reassembler()
        return 0x7E, hdlc.frame_length, self._hdlc

    def _setup_mbus(self):
        from .link import mbus
        self.mbus = mbus.Reassembler()
        return 0x68, mbus.frame_length, self._mbus

    def feed(self, chunk):
        """Add bytes; return the Readings and DecodeErrors of the frames they completed."""
        self.buf.extend(chunk)
        events = []
        self._scan(events)
        self._bound()
        return events

    def flush(self):
        """End of input: decode a trailing bare APDU, report a truncated frame, reset the buffer."""
        events = []
        rest, pending = bytes(self.buf), self.scan_from
        self.buf = bytearray()
        self.scan_from = 0
        if self.dlms and rest.startswith(_BARE_APDU):
            self._decode(self.apdu.decode, rest, "apdu", events)
        elif pending < len(rest) and rest[pending:] != b"\x7e":
            # a frame start was waiting for more bytes (a lone 0x7E is just the last closing flag)
            self.skipped += pending
            self._emit(FormatError("truncated frame at the end of the input (%d bytes)"
                                   % (len(rest) - pending)), events)
        else:
            self.skipped += len(rest)
        return events

    def _scan(self, events):
        buf = self.buf
        pos = self.scan_from
        while pos < len(buf):
            framer = self._framers.get(buf[pos])
            n = framer[0](buf, pos) if framer else -1
            if n == 0:
                break
            if n < 0:
                pos += 1
                continue
            frame = bytes(buf[pos:pos + n])
            self.skipped += pos
            buf[:pos + n] = b""   # in place: no new buffer per frame, so no heap fragmentation
            pos = 0
            self._decode(framer[1], frame, None, events)
        self.scan_from = pos

    def _bound(self):
        excess = len(self.buf) - self.max_buffer
        if excess > 0:
            self.buf[:excess] = b""
            self.skipped += excess
            self.scan_from = max(0, self.scan_from - excess)

    def _decode(self, handler, frame, source, events):
        try:
            reading = handler(frame)
        except DecodeError as error:
            self._emit(error, events)
            return
        except Exception as error:  # a bug must never take the dongle down; fuzzing hunts these
            self._emit(FormatError("internal decoder error (please report): %r" % (error,)), events)
            return
        if reading is not None:
            if source:
                reading.source = source
            self._emit(reading, events)

    def _emit(self, event, events):
        if isinstance(event, Reading):
            self.counts["ok"] += 1
        else:
            self.counts[event.kind] += 1
            self.last_error = event.message
        events.append(event)

    # one handler per frame kind -------------------------------------------------------------

    def _p1(self, frame):
        reading = self._dsmr.decode_telegram(frame)
        reading.source = "p1"
        return reading

    def _hdlc(self, frame):
        apdu = self.hdlc.push(frame)
        return None if apdu is None else _sourced(self.apdu.decode(apdu), "hdlc")

    def _mbus(self, frame):
        apdu = self.mbus.push(frame)
        return None if apdu is None else _sourced(self.apdu.decode(apdu), "mbus")

    def _glo(self, frame):
        """0xDB straight on the line: Smarty/T210-D P1 (plaintext is a telegram) or a bare APDU."""
        from .security import LUXEMBOURG_AK
        result, authenticated, warnings = self.security.open(
            frame, self._glo_plaintext, default_auth_key=LUXEMBOURG_AK)
        if result is None:
            return None
        if result.source == "p1" and self._p1_link.check_crc(result.raw) is False and authenticated is not True:
            # the tag did not vouch for this plaintext, so the telegram's own CRC must
            raise CrcError("P1 CRC mismatch inside an unauthenticated encrypted frame")
        result.authenticated = authenticated
        result.warnings.extend(warnings)
        result.source = "sht" if result.source == "p1" else result.source
        return result

    def _glo_plaintext(self, plaintext):
        if plaintext[:1] == b"/":
            reading = self._dsmr.decode_telegram(plaintext, crc="warn")
            reading.source = "p1"
            reading.raw = plaintext
            return reading
        return _sourced(self.apdu.decode_plain(plaintext), "apdu")


def _sourced(reading, source):
    if reading is not None and not reading.source:
        reading.source = source
    return reading


def event_json(event):
    """The decode contract's line for one event (a Reading or a DecodeError)."""
    return event.to_json() if isinstance(event, Reading) else error_json(event)


def decode_chunks(chunks, decoder):
    """Yield the contract's JSON lines for an iterable of byte chunks, in stream order."""
    for chunk in chunks:
        for event in decoder.feed(chunk):
            yield event_json(event)
    for event in decoder.flush():
        yield event_json(event)
