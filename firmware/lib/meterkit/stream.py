"""StreamDecoder: bytes as a UART delivers them in, decoded Readings and rejections out.

The framing is detected from the stream itself: every frame kind starts with its own byte ('/'
P1 text, 0x7E HDLC, 0x68 M-Bus long frame, 0xDB general-glo-ciphering as Smarty sends it), and
each framer confirms or refuses a candidate start. Bytes between frames are skipped and counted.
The buffer is bounded, so a noisy line can never exhaust memory.

Lost, repeated or garbled bytes cost only the frames they hit, and every such frame is counted: a
frame that fails its check is an error; a layer that drops an unfinished multi-frame payload
(HDLC segments, M-Bus segments, block transfer) because a new one began says so in an error of
its own (`notes`) before the new frame's result; what is still unfinished at the end of the input
is reported by flush(). A binary frame's end follows from its length field, which bytes lost
inside the frame (or a garbled 0xDB length, which nothing guards) make reach into the next frame:
so a binary frame that is refused is scanned again from its second byte. And as nothing but a flag
or a few stray bytes comes between binary frames, a longer run of other bytes before one (or at
the end of the input) is what is left of a lost frame, and is counted as one; between P1
telegrams, a run of 128 bytes or more is.
"""
from .errors import DecodeError, FormatError
from .reading import Reading

MAX_BUFFER = 8192
# Which framings to look for. A dongle configured for one meter type passes just its own, so the
# layers it never needs are never imported (each costs heap on the ESP32).
FRAMINGS = ("p1", "glo", "hdlc", "mbus")
# Bare APDUs have no framing of their own; captures of them are decoded at the end of the input.
_BARE_APDU = (b"\xe6\xe7\x00", b"\xe6\xe6\x00", b"\x0f", b"\xe0")
COUNTERS = ("ok", "crc", "auth", "replay", "format")
# Binary frames come back to back, with at most a flag or a few stray bytes between them: a run
# of more bytes than line noise before one is what is left of a frame whose start was damaged,
# counted as a lost frame. P1 meters may put a line or two of text between telegrams (EasyMeter:
# 47 bytes), so there the run must be longer (a telegram is hundreds of bytes).
LOST_FRAME = 32
LOST_TELEGRAM = 128
BACK_TO_BACK = ("glo", "hdlc", "mbus")
# HDLC and M-Bus frames carry glo APDUs (0xDB ...): on a line that sends them, a 0xDB is no bare
# frame's start but one inside a frame that failed, with a length and contents no check covers.
_CARRIERS = (0x7E, 0x68)


class StreamDecoder:
    def __init__(self, key=None, auth_key=None, max_buffer=MAX_BUFFER, framings=FRAMINGS):
        self.key, self.auth_key = key, auth_key
        self.max_buffer = max_buffer
        self.buf = bytearray()
        self.scan_from = 0          # bytes before this were already refused as frame starts
        self.counts = dict((name, 0) for name in COUNTERS)
        self.skipped = 0            # garbage bytes between frames
        self.last_error = None
        self.memory_short = 0       # frames skipped for want of heap since the caller last looked
        self.notes = []             # errors about earlier frames that a layer found with this one
        self.gap = 0                # bytes skipped right before the frame being decoded
        self.dlms = "hdlc" in framings or "mbus" in framings
        self._framers = {}          # first byte of a frame -> (frame_length, handler)
        self._covered = 0           # bytes ahead that belong to a refused frame being rescanned
        self._back_to_back = []     # first bytes of the binary (BACK_TO_BACK) framings looked for
        self._lost_run = {}         # first byte of a frame -> bytes before it that count as a lost one
        self._last = -1             # first byte of the last frame found
        self._speaks = -1           # first byte of the framing that gave the last reading
        for name in framings:
            if name == "p1":
                from . import dsmr
                from .link import p1
                self._framers[0x2F] = (p1.frame_length, self._p1_telegram)
                self._p1_decode = dsmr.decode_telegram
                self._p1_crc = False    # True once a telegram with a CRC came: its meter sends them
                self._framers[0x21] = (p1.orphan_end_length, p1.refuse_orphan_end)   # '!'
                self._lost_run[0x2F] = LOST_TELEGRAM
            elif name in FRAMINGS:
                from .stream_dlms import framer
                first, frame_length, handler = framer(self, name)
                self._framers[first] = (frame_length, handler)
                if name in BACK_TO_BACK:
                    self._back_to_back.append(first)
                    self._lost_run[first] = LOST_FRAME
            else:
                raise ValueError("unknown framing %r (known: %s)" % (name, ", ".join(FRAMINGS)))

    def __getattr__(self, name):
        # security (keys, tag checks, the replay guard) and apdu: created on first use, by
        # stream_dlms, which a P1 dongle never loads
        if name in ("security", "apdu"):
            from . import stream_dlms
            layer = getattr(stream_dlms, name)(self)
            setattr(self, name, layer)
            return layer
        raise AttributeError(name)

    def feed(self, chunk):
        """Add bytes; return the Readings and DecodeErrors of the frames they completed."""
        buf = self.buf
        buf.extend(chunk)
        events = []
        pos = self.scan_from
        while pos < len(buf):
            first = buf[pos]
            framer = self._framers.get(first)
            if first == 0xDB and self._speaks in _CARRIERS:
                framer = None   # a glo APDU inside a damaged HDLC/M-Bus frame: no bare frame
            n = framer[0](buf, pos) if framer else -1
            if n == 0:
                if not self._holds(first, len(buf)):
                    pos += 1
                    continue
                break
            if n < 0:
                pos += 1
                continue
            frame = bytes(memoryview(buf)[pos:pos + n])   # (one copy, where a slice makes two)
            gap = self.gap = pos - min(pos, self._covered)
            self._last = first
            self.skipped += gap
            if gap >= self._lost_run.get(first, gap + 1):
                self._emit(FormatError("%d bytes before this frame were no frame: the rest of one "
                                       "whose start was lost" % gap), events)
            outcome = self._decode(framer[1], frame, None, events)
            if isinstance(outcome, Reading):
                self._speaks = first
            if first in self._back_to_back and not _vouched(first, outcome):
                n, self._covered = 1, n - 1   # scan it again: its length may have been wrong
            else:
                self._covered = 0
            buf[:pos + n] = b""   # in place: no new buffer per frame, so no heap fragmentation
            pos = 0
        excess = len(buf) - self.max_buffer   # bounded: a noisy line can never exhaust memory
        if excess > 0:
            buf[:excess] = b""
            self.skipped += excess
            pos = max(0, pos - excess)
            self._covered = max(0, self._covered - excess)
        self.scan_from = pos
        return events

    def _holds(self, first, size):
        """May a frame start that waits for more bytes hold up the scan? Not when the buffer is
        full: it would need more than the buffer holds (a length from noise)."""
        return size < self.max_buffer

    def flush(self):
        """End of input: decode a trailing bare APDU, report a truncated frame and what the layers
        still hold unfinished, reset the buffer."""
        events = []
        rest, pending = bytes(self.buf), self.scan_from
        tail = len(rest) - min(len(rest), self._covered)
        self.buf = bytearray()
        self.scan_from = self._covered = 0
        if self.dlms and rest.startswith(_BARE_APDU):
            self._decode(self.apdu.decode, rest, "apdu", events)
        elif pending < len(rest) and rest[pending:] != b"\x7e":
            # a frame start was waiting for more bytes (a lone 0x7E is just the last closing flag)
            self.skipped += pending
            self._emit(FormatError("truncated frame at the end of the input (%d bytes)"
                                   % (len(rest) - pending)), events)
            if rest[pending] in self._back_to_back:   # its length may be noise: look inside
                self._covered = len(rest) - pending - 1
                return events + self.feed(rest[pending + 1:]) + self.flush()
        else:
            self.skipped += tail
            if tail >= self._lost_run.get(self._last, tail + 1):
                self._emit(FormatError("the last %d bytes were no frame: the rest of one whose "
                                       "start was lost" % tail), events)
        if self.dlms:
            from .stream_dlms import unfinished
            for message in unfinished(self):
                self._emit(FormatError(message), events)
        return events

    def _p1_telegram(self, frame):
        """A meter that sent a CRC sends one with every telegram: on its line, one without is a
        damaged one (its lines lost, a copied '!' ending it early), never a DSMR 2/3 telegram."""
        if self._p1_crc:
            return self._p1_decode(frame, "require")
        reading = self._p1_decode(frame)
        from .link.p1 import stated_crc
        self._p1_crc = stated_crc(frame, frame.find(b"!")) != ""
        return reading

    def _decode(self, handler, frame, source, events):
        """Decode one frame into events (after any notes its layers made); return what it gave:
        the Reading, the DecodeError, or None (a multi-frame payload is not complete yet)."""
        outcome = None
        try:
            outcome = handler(frame)
        except DecodeError as error:
            outcome = error
        except MemoryError:   # a dongle short of heap for a moment: skip this frame, go on
            self.memory_short += 1
            outcome = FormatError("out of memory while decoding: frame skipped")
        except Exception as error:  # a bug must never take the dongle down; fuzzing hunts these
            outcome = FormatError("internal decoder error (please report): %r" % (error,))
        for note in self.notes:
            self._emit(note, events)
        self.notes.clear()
        if outcome is not None:
            if source and not isinstance(outcome, DecodeError):
                outcome.source = source
            self._emit(outcome, events)
        return outcome

    def _emit(self, event, events):
        if isinstance(event, Reading):
            self.counts["ok"] += 1
        else:
            self.counts[event.kind] += 1
            self.last_error = event.message
        events.append(event)


def _vouched(first, outcome):
    """Did the frame's own check vouch for where it ends? Not when it was refused, nor for a bare
    0xDB frame whose tag did not verify: the telegram's CRC inside vouches for the data only."""
    if isinstance(outcome, DecodeError):
        return False
    return first != 0xDB or outcome is None or outcome.authenticated is True


def event_json(event):
    """The decode contract's line for one event (a Reading or a DecodeError)."""
    if isinstance(event, Reading):
        return event.to_json()
    from .reading_json import error_json
    return error_json(event)


def decode_chunks(chunks, decoder):
    """Yield the contract's JSON lines for an iterable of byte chunks, in stream order."""
    for chunk in chunks:
        for event in decoder.feed(chunk):
            yield event_json(event)
    for event in decoder.flush():
        yield event_json(event)
