"""DLMS APDUs as meters push them: general-block-transfer, general-glo-ciphering and
data-notification, in whatever nesting the link layer delivers (LLC header already removed or
not). The notification body goes to cosem.notification_reading.

    ApduDecoder(security).decode(apdu) -> Reading, or None while a block transfer is incomplete
"""
import sys

from ..errors import AuthError, FormatError
from ..obis import obis_bytes
from . import axdr, cosem, fastpush, pushlists

pushplan = None   # push plans on the host; the dongle's heap is better spent (see pushplan.py)
if sys.implementation.name != "micropython":
    from . import pushplan

LLC_HEADERS = (b"\xe6\xe7\x00", b"\xe6\xe6\x00")
GENERAL_BLOCK_TRANSFER = 0xE0
GENERAL_GLO_CIPHERING = 0xDB
DATA_NOTIFICATION = 0x0F
MAX_REASSEMBLY = 8192   # bytes of block-transfer data held at most (ESP32 heap is small)
LAST_BLOCK = 0x80


class ApduDecoder:
    def __init__(self, security, push_lists=None):
        self.security = security
        self.push_lists = push_lists      # a pushlists.MODELS name to force, None = detect
        self._blocks = None               # bytearray of data received so far
        self._next_block = 1
        self.lost = None                  # why an unfinished transfer was dropped (to count)
        self._repeats = []                # what axdr.decode remembers of the last push body
        self._plans = [] if pushplan else None   # the layouts of the last pushes (pushplan.py)

    def decode(self, apdu):
        """One APDU (optionally behind an LLC header) -> Reading, or None (GBT incomplete)."""
        apdu = _strip_llc(bytes(apdu))
        tag = apdu[0] if apdu else None
        if tag == GENERAL_BLOCK_TRANSFER:
            complete = self._block_transfer(apdu)
            return None if complete is None else self.decode(complete)
        if tag == GENERAL_GLO_CIPHERING:
            return self._ciphered(apdu)
        return self.decode_plain(apdu)

    def lose(self, reason):
        """Drop an unfinished block transfer; the message that says so (None if there was none)."""
        blocks = self._next_block - 1
        if self._blocks is None:
            return None
        self._reset()
        if reason is None:
            return None
        return ("general-block-transfer: an unfinished transfer (%d blocks) was dropped: %s"
                % (blocks, reason))

    def decode_plain(self, apdu):
        """An unencrypted APDU (also the plaintext security.open hands back)."""
        apdu = _strip_llc(bytes(apdu))
        if not apdu:
            raise FormatError("empty APDU")
        tag = apdu[0]
        if tag == DATA_NOTIFICATION:
            return self._notification(apdu)
        if tag == GENERAL_BLOCK_TRANSFER:
            complete = self._block_transfer(apdu)
            return None if complete is None else self.decode_plain(complete)
        raise FormatError("APDU tag 0x%02X is not a data-notification, block transfer or "
                          "glo-ciphering APDU" % tag)

    _decode_plain = decode_plain

    def _ciphered(self, apdu):
        if self.security is None:
            raise AuthError("encrypted APDU (general-glo-ciphering) but no key is configured")
        reading, authenticated, warnings = self.security.open(apdu, self.decode_plain)
        if reading is not None:
            reading.authenticated = authenticated
            reading.warnings.extend(warnings)
        return reading

    # ---- general-block-transfer --------------------------------------------------------------

    def _block_transfer(self, apdu):
        """Collect GBT blocks in order; return the reassembled APDU after the last block."""
        pos = 0
        while pos < len(apdu):
            if apdu[pos] != GENERAL_BLOCK_TRANSFER or pos + 6 > len(apdu):
                self._reset()
                raise FormatError("general-block-transfer block truncated at offset %d" % pos)
            control = apdu[pos + 1]
            number = apdu[pos + 2] << 8 | apdu[pos + 3]
            size, data_at = axdr.decode_length(apdu, pos + 6)
            end = data_at + size
            if end > len(apdu):
                self._reset()
                raise FormatError("general-block-transfer block %d says %d bytes, %d present"
                                  % (number, size, len(apdu) - data_at))
            self._accept(number, memoryview(apdu)[data_at:end])   # copied once, into _blocks
            pos = end
            if control & LAST_BLOCK:
                complete = bytes(self._blocks)
                self._reset()
                if pos != len(apdu):
                    raise FormatError("%d bytes after the last block" % (len(apdu) - pos))
                return complete
        return None

    def _accept(self, number, data):
        if number == 1:                     # a new transfer: drop any unfinished one, and say so
            self.lost = self.lose("a new one began")
            self._blocks = bytearray()
            self._next_block = 1
        if self._blocks is None or number != self._next_block:
            expected = self._next_block
            self._reset()
            raise FormatError("general-block-transfer block %d out of order (expected %d)"
                              % (number, expected))
        if len(self._blocks) + len(data) > MAX_REASSEMBLY:
            self._reset()
            raise FormatError("general-block-transfer exceeds %d bytes" % MAX_REASSEMBLY)
        self._blocks.extend(data)
        self._next_block += 1

    def _reset(self):
        self._blocks = None
        self._next_block = 1

    # ---- data-notification -------------------------------------------------------------------

    def _notification(self, apdu):
        if len(apdu) < 6:
            raise FormatError("data-notification truncated (%d bytes)" % len(apdu))
        invoke_id = int.from_bytes(bytes(apdu[1:5]), "big")
        when, pos = _notification_time(apdu, 5)
        read = None
        if self._plans is not None:
            read = pushplan.read(self._plans, apdu, pos, when, self.push_lists)
        if read is None:
            read = fastpush.read(apdu, pos, when, self.push_lists, self._repeats)
            if read is not None and self._plans is not None:   # a new layout: plan the next
                pushplan.remember(self._plans, apdu, pos, self.push_lists)
        if read is None:   # not a common shape: the recursive decoder reads it
            body, end = axdr.decode(apdu, pos, self._repeats)
            reading = cosem.notification_reading(body, when, self.push_lists)
        else:
            reading, end = read
        reading.invoke_id = invoke_id     # long-invoke-id-and-priority, all 32 bits
        if end != len(apdu):
            reading.leftover = len(apdu) - end
            reading.warnings.append("%d bytes after the notification body" % reading.leftover)
        return reading


def _strip_llc(apdu):
    if len(apdu) > 2 and apdu[0] == 0xE6 and apdu[2] == 0 and apdu[:3] in LLC_HEADERS:
        return apdu[3:]
    return apdu


def _notification_time(apdu, pos):
    """The optional date-time: 0x00 absent, 0x0C + 12 bytes, or tagged 0x09 0x0C + 12 bytes."""
    if apdu[pos] == axdr.OCTET_STRING:
        pos += 1
    if pos >= len(apdu):
        raise FormatError("data-notification truncated in its date-time")
    size = apdu[pos]
    if size == 0:
        return None, pos + 1
    if size != 12 or pos + 13 > len(apdu):
        raise FormatError("data-notification date-time: bad length %d at offset %d" % (size, pos))
    return cosem.datetime_text(bytes(apdu[pos + 1:pos + 13])), pos + 13


# ---- encoding (simulator, tests) ------------------------------------------------------------

def encode_notification(values, invoke_id=1, timestamp=None, flat=False, llc=False):
    """Build a data-notification APDU.

    values:    [(obis_text, value, scaler, unit_text)]: int values get (scaler, unit) next to
               them; str/bytes/None values are sent as they are (scaler and unit ignored)
    timestamp: 12 date-time bytes (cosem.datetime_bytes) or None
    flat:      EVN style `OBIS, value, (scaler, unit), ...` instead of Aidon-style structures
    """
    from . import axdr_encode   # encoders serve the simulator and tests: the dongle never loads them
    items = []
    for obis, value, scaler, unit in values:
        item = [obis_bytes(obis), value]
        if isinstance(value, int) and not isinstance(value, bool):
            item.append((axdr_encode.Typed(axdr.INTEGER, scaler),
                         axdr_encode.Typed(axdr.ENUM, pushlists.unit_enum(unit))))
        if flat:
            items.extend(item)
        else:
            items.append(tuple(item))
    head = bytes((DATA_NOTIFICATION,)) + (invoke_id & 0xFFFFFFFF).to_bytes(4, "big")
    head += b"\x00" if timestamp is None else b"\x0c" + bytes(timestamp)
    apdu = head + axdr_encode.encode(tuple(items))
    return (LLC_HEADERS[0] + apdu) if llc else apdu


def encode_blocks(apdu, block_size=128):
    """Split an APDU into general-block-transfer blocks (one bytes object per block)."""
    from .axdr_encode import encode_length
    blocks = []
    count = max(1, (len(apdu) + block_size - 1) // block_size)
    for i in range(count):
        data = apdu[i * block_size:(i + 1) * block_size]
        control = LAST_BLOCK if i == count - 1 else 0
        blocks.append(bytes((GENERAL_BLOCK_TRANSFER, control)) + (i + 1).to_bytes(2, "big")
                      + b"\x00\x00" + encode_length(len(data)) + data)
    return blocks
