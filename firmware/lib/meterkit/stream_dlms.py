"""The DLMS side of StreamDecoder: HDLC, M-Bus and 0xDB (general-glo-ciphering) framings, keys
and APDUs. Loaded only by a decoder that looks for those framings or reads its `security` or
`apdu`: a P1 dongle never does, and code it never runs would still cost it heap."""
from .errors import CrcError, DecodeError, FormatError
from .stream import LOST_FRAME


def framer(decoder, name):
    """(first byte, frame_length, handler) of one framing for decoder._framers."""
    if name == "glo":
        from .security import glo_frame_length
        return 0xDB, glo_frame_length, lambda frame: _glo(decoder, frame)
    if name == "hdlc":
        from .link import hdlc
        decoder.hdlc = hdlc.Reassembler()
        return 0x7E, hdlc.frame_length, lambda frame: _reassembled(decoder, decoder.hdlc, frame, "hdlc")
    from .link import mbus
    decoder.mbus = mbus.Reassembler()
    return 0x68, mbus.frame_length, lambda frame: _reassembled(decoder, decoder.mbus, frame, "mbus")


def security(decoder):
    from .security import Security
    return Security(decoder.key, decoder.auth_key)


def apdu(decoder):
    from .dlms.apdu import ApduDecoder
    return ApduDecoder(decoder.security)


def _reassembled(decoder, reassembler, frame, source):
    if decoder.gap and reassembler.CONTIGUOUS:   # (a long gap the stream counted as a lost frame)
        _note(decoder, reassembler.lose(None if decoder.gap >= LOST_FRAME else
                                        "bytes were lost between two of its segments"))
    try:
        apdu = reassembler.push(frame)
    except DecodeError:
        _drop_blocks(decoder)   # the frame was one of them: its error counts the loss once
        raise
    finally:
        if reassembler.lost:
            _note(decoder, reassembler.lost)
            reassembler.lost = None
    if apdu is None:
        return None
    layer = decoder.apdu
    try:
        return _sourced(layer.decode(apdu), source)
    finally:
        if layer.lost:
            _note(decoder, layer.lost)
            layer.lost = None


def _note(decoder, lost):
    """A layer dropped an unfinished payload (earlier frames, no error yet): count it."""
    if lost:
        decoder.notes.append(FormatError(lost))


def _drop_blocks(decoder):
    apdu = decoder.__dict__.get("apdu")   # not created just to be told
    if apdu is not None:
        apdu.lose(None)


def unfinished(decoder):
    """What the layers still hold at the end of the input: one message per unfinished payload."""
    messages = []
    for name in ("hdlc", "mbus", "apdu"):
        layer = decoder.__dict__.get(name)
        if layer is not None:
            for lost in (layer.lost, layer.lose("the input ended before its last part")):
                if lost:
                    messages.append(lost)
            layer.lost = None
    return messages


def _glo(decoder, frame):
    """0xDB straight on the line: Smarty/T210-D P1 (plaintext is a telegram) or a bare APDU."""
    from .link.p1 import check_crc, frame_length
    from .security import LUXEMBOURG_AK
    result, authenticated, warnings = decoder.security.open(
        frame, lambda plaintext: _glo_plaintext(decoder, plaintext), default_auth_key=LUXEMBOURG_AK)
    if result is None:
        return None
    if result.source == "p1" and authenticated is not True:
        # the tag did not vouch for this plaintext, so the telegram must: whole, its CRC right
        raw = result.raw
        if check_crc(raw) is False:
            raise CrcError("P1 CRC mismatch inside an unauthenticated encrypted frame")
        if frame_length(raw, 0) != len(raw):
            raise FormatError("the telegram inside an unauthenticated encrypted frame is not one "
                              "whole telegram (the frame was damaged?)")
    elif authenticated is not True and decoder.gap:
        # nothing vouches for it, and it did not begin where the last frame ended: most likely the
        # glo APDU inside a damaged HDLC or M-Bus frame, spliced from what the damage left
        raise FormatError("an unauthenticated 0xDB frame after %d bytes that were no frame: "
                          "taken for a piece of a damaged frame" % decoder.gap)
    result.authenticated = authenticated
    result.warnings.extend(warnings)
    result.source = "sht" if result.source == "p1" else result.source
    return result


def _glo_plaintext(decoder, plaintext):
    if plaintext[:1] == b"/":
        from .dsmr import decode_telegram
        reading = decode_telegram(plaintext, crc="warn")
        reading.raw = plaintext
        return reading
    return _sourced(decoder.apdu.decode_plain(plaintext), "apdu")


def _sourced(reading, source):
    if reading is not None and not reading.source:
        reading.source = source
    return reading
