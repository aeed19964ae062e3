"""General-glo-ciphering (0xDB): keys, GCM tag check, replay guard, and which key is wrong.

    DB 08 <system title 8> <A-XDR length> <SC 1> <frame counter 4> <ciphertext> [<tag 12>]

IV = system title || frame counter. The security control byte (SC) says what protects the frame:
0x10 authenticated (a 12-byte tag), 0x20 encrypted, low nibble the security suite. SC 0x30: AAD =
SC || AK. SC 0x20/0x21: encryption only, no tag. SC 0x10: AAD = SC || AK || plaintext, nothing
encrypted. Luxembourg's Smarty meters send this frame straight on the P1 line (the "SHT" frame,
plaintext a DSMR telegram) with a fixed, published AK.

A tag mismatch alone cannot say which key is wrong; the plaintext can. With the right encryption
key it is a valid APDU/telegram (so the authentication key is wrong), with a wrong one it is noise.
Where no tag vouches for the plaintext, it must parse to its last byte: noise that merely begins
like an APDU (a damaged frame, a false 0xDB start inside an M-Bus frame) is refused, not read.
"""
from binascii import hexlify, unhexlify

from .crypto import gcm
from .errors import AuthError, DecodeError, FormatError, NeedMore, ReplayError

LUXEMBOURG_AK = b"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc\xdd\xee\xff"
GLO_CIPHERING = 0xDB
AUTHENTICATED = 0x10
ENCRYPTED = 0x20
COMPRESSED = 0x80
TAG_LENGTH = 12
MAX_LENGTH = 8000       # bytes after the length field: longer is a false start on a noisy line
REPLAY_TITLES = 8       # system titles whose last frame counter is remembered

_WRONG_EK = "encryption key wrong: the decrypted data is not a valid APDU/telegram"
_NO_TAG_AK = "this meter sends no tag: the authentication key is not used"


class GloFrame:
    """The parts of a general-glo-ciphering APDU (tag None when the SC has no authentication)."""

    def __init__(self, system_title, security_control, counter, ciphertext, tag):
        self.system_title = system_title
        self.security_control = security_control
        self.counter = counter
        self.ciphertext = ciphertext
        self.tag = tag

    def iv(self):
        return self.system_title + self.counter.to_bytes(4, "big")

    def title_text(self):
        """'534147677001BD54 (SAG)': the hex title, with the maker's letters when it has them."""
        text = hexlify(self.system_title).decode().upper()
        maker = self.system_title[:3]
        if all(0x41 <= b <= 0x5A or 0x61 <= b <= 0x7A for b in maker):
            text += " (%s)" % maker.decode()
        return text


# --- framing ----------------------------------------------------------------------------------

def _read_length(buf, pos):
    """A-XDR length at buf[pos]: (length, bytes used); length None = need more, -1 = invalid."""
    end = len(buf)
    if pos >= end:
        return None, 0
    first = buf[pos]
    if first < 0x80:
        return first, 1
    size = first - 0x80
    if size not in (1, 2):
        return -1, 0
    if pos + 1 + size > end:
        return None, 0
    return int.from_bytes(bytes(buf[pos + 1:pos + 1 + size]), "big"), 1 + size


def _plausible_sc(sc):
    return sc & (AUTHENTICATED | ENCRYPTED) and (sc & 0x0F) <= 2


def glo_frame_length(buf, start):
    """Framer contract: n > 0 a complete frame of n bytes at `start`, 0 need more, -1 not one."""
    end = len(buf)
    if start >= end:
        return 0
    if buf[start] != GLO_CIPHERING:
        return -1
    if start + 1 >= end:
        return 0
    if buf[start + 1] != 8:
        return -1
    length, size = _read_length(buf, start + 10)
    if length is None:
        return 0
    if length < 5 or length > MAX_LENGTH:
        return -1
    sc_pos = start + 10 + size
    if sc_pos >= end:
        return 0
    sc = buf[sc_pos]
    if not _plausible_sc(sc) or (sc & AUTHENTICATED and length < 5 + TAG_LENGTH):
        return -1
    total = 10 + size + length
    return total if end - start >= total else 0


def parse_glo(apdu):
    """Split a general-glo-ciphering APDU into a GloFrame; FormatError when its shape is wrong."""
    if len(apdu) < 11 or apdu[0] != GLO_CIPHERING:
        raise FormatError("not a general-glo-ciphering APDU (0xDB and a system title expected)")
    if apdu[1] != 8:
        raise FormatError("glo-ciphering system title is %d bytes long, expected 8" % apdu[1])
    length, size = _read_length(apdu, 10)
    if length is None:
        raise FormatError("glo-ciphering APDU truncated inside its length field")
    if length < 0:
        raise FormatError("glo-ciphering length field starts with 0x%02X, not an A-XDR length" % apdu[10])
    body = 10 + size
    if len(apdu) != body + length:
        raise FormatError("glo-ciphering APDU is %d bytes, its length field says %d"
                          % (len(apdu), body + length))
    if length < 5:
        raise FormatError("glo-ciphering APDU too short for security control and frame counter")
    sc = apdu[body]
    _check_sc(sc)
    counter = int.from_bytes(bytes(apdu[body + 1:body + 5]), "big")
    payload = bytes(apdu[body + 5:])
    tag = None
    if sc & AUTHENTICATED:
        if len(payload) < TAG_LENGTH:
            raise FormatError("glo-ciphering APDU too short for its %d-byte tag" % TAG_LENGTH)
        tag = payload[-TAG_LENGTH:]
        payload = payload[:-TAG_LENGTH]
    return GloFrame(bytes(apdu[2:10]), sc, counter, payload, tag)


def _check_sc(sc):
    if not sc & (AUTHENTICATED | ENCRYPTED):
        raise FormatError("security control 0x%02X neither authenticates nor encrypts" % sc)
    if sc & COMPRESSED:
        raise FormatError("security control 0x%02X: compressed APDUs are not supported" % sc)
    suite = sc & 0x0F
    if suite == 2:
        raise FormatError("security control 0x%02X: security suite 2 (AES-GCM-256) is not supported" % sc)
    if suite > 2:
        raise FormatError("security control 0x%02X: unknown security suite %d" % (sc, suite))


def _encode_length(n):
    if n < 0x80:
        return bytes((n,))
    if n <= 0xFF:
        return bytes((0x81, n))
    if n <= 0xFFFF:
        return bytes((0x82, n >> 8, n & 0xFF))
    raise ValueError("glo-ciphering APDU of %d bytes is too long" % n)


def encode_glo(key, plaintext, system_title, counter, security_control=0x30, auth_key=None):
    """Build a general-glo-ciphering APDU (for encoders, the simulator and tests)."""
    sc = security_control
    key = _key_bytes(key, "encryption key")
    auth_key = _key_bytes(auth_key, "authentication key")
    if len(system_title) != 8:
        raise ValueError("a system title is 8 bytes")
    _check_sc(sc)
    if sc & AUTHENTICATED and auth_key is None:
        raise ValueError("security control 0x%02X needs an authentication key" % sc)
    frame = GloFrame(bytes(system_title), sc, counter, b"", b"")
    if sc & ENCRYPTED:
        aad = bytes((sc,)) + auth_key if sc & AUTHENTICATED else b""
        ciphertext, tag = gcm.encrypt(key, frame.iv(), plaintext, aad, TAG_LENGTH)
    else:
        ciphertext = bytes(plaintext)
        tag = gcm.encrypt(key, frame.iv(), b"", bytes((sc,)) + auth_key + ciphertext, TAG_LENGTH)[1]
    body = bytes((sc,)) + counter.to_bytes(4, "big") + ciphertext + (tag if sc & AUTHENTICATED else b"")
    return bytes((GLO_CIPHERING, 8)) + frame.system_title + _encode_length(len(body)) + body


def _key_bytes(key, what):
    """A 16-byte key from bytes or hex text; None (or empty) means no key."""
    if not key:
        return None
    if isinstance(key, str):
        try:
            key = unhexlify(key.replace(" ", ""))
        except ValueError:
            raise ValueError("the %s is not hex: %r" % (what, key))
    if len(key) != 16:
        raise ValueError("the %s must be 16 bytes (32 hex digits), got %d bytes" % (what, len(key)))
    return bytes(key)


# --- opening frames ---------------------------------------------------------------------------

class Security:
    """Opens glo-ciphering APDUs with this dongle's keys and remembers frame counters."""

    def __init__(self, key=None, auth_key=None):
        self.key = _key_bytes(key, "encryption key")
        self.auth_key = _key_bytes(auth_key, "authentication key")
        self._counters = []  # (system title, last accepted counter), most recent first

    def open(self, apdu, parse, default_auth_key=None):
        """Check, decrypt and parse one APDU: (parse's result, authenticated, warnings).

        `parse(plaintext)` returns a result or raises DecodeError. AuthError: a wrong key (the
        message says which) or a missing one; ReplayError: an old frame counter.
        """
        frame = parse_glo(apdu)
        if frame.security_control & ENCRYPTED and self.key is None:
            raise AuthError("frame from system title %s is encrypted: an encryption key is needed"
                            % frame.title_text())
        self._check_replay(frame)
        auth_key = self.auth_key if self.auth_key is not None else default_auth_key
        plaintext, tag_ok = self.unseal(frame, auth_key)
        if tag_ok is False and self.auth_key is not None:
            raise AuthError(self._mismatch_message(frame, plaintext, parse))
        try:
            result = parse(plaintext)
            if not tag_ok and frame.security_control & ENCRYPTED and getattr(result, "leftover", 0):
                # no tag vouches for it: a parse that stops short is noise that began like an APDU
                raise FormatError("%d bytes after the APDU body" % result.leftover)
        except (DecodeError, NeedMore) as error:
            if tag_ok or not frame.security_control & ENCRYPTED:
                # the data is what the meter sent: its own problem is the caller's to report
                if isinstance(error, NeedMore):
                    raise FormatError("the decrypted APDU/telegram is truncated")
                raise
            raise AuthError(self._wrong_ek_message(frame, tag_ok, default_auth_key, error))
        self._commit(frame)
        return result, tag_ok is True, self._warnings(frame, tag_ok, auth_key)

    def unseal(self, frame, auth_key=None):
        """(plaintext, tag_ok) for a GloFrame; tag_ok None when the tag is absent or not checked."""
        sc = bytes((frame.security_control,))
        if not frame.security_control & ENCRYPTED:  # authentication only: GMAC over the cleartext
            if self.key is None or auth_key is None:
                return frame.ciphertext, None
            aad = sc + auth_key + frame.ciphertext
            return frame.ciphertext, gcm.decrypt(self.key, frame.iv(), b"", aad, frame.tag)[1]
        if frame.tag is None or auth_key is None:
            return gcm.decrypt(self.key, frame.iv(), frame.ciphertext)[0], None
        return gcm.decrypt(self.key, frame.iv(), frame.ciphertext, sc + auth_key, frame.tag)

    def reset_counters(self):
        """Forget every frame counter (e.g. after a meter was replaced or reset)."""
        self._counters = []

    def _check_replay(self, frame):
        for title, last in self._counters:
            if title == frame.system_title and frame.counter <= last:
                raise ReplayError("replayed frame from system title %s: frame counter %d does not "
                                  "increase over the last accepted %d"
                                  % (frame.title_text(), frame.counter, last))

    def _commit(self, frame):
        kept = [entry for entry in self._counters if entry[0] != frame.system_title]
        self._counters = [(frame.system_title, frame.counter)] + kept[:REPLAY_TITLES - 1]

    def _mismatch_message(self, frame, plaintext, parse):
        if not frame.security_control & ENCRYPTED:
            return ("tag mismatch on an authentication-only frame: the authentication key (or the "
                    "encryption key, which the tag also uses) is wrong")
        try:
            parse(plaintext)
        except (DecodeError, NeedMore):
            return _WRONG_EK
        return "authentication key wrong: data decrypts with the encryption key but the tag does not match"

    def _wrong_ek_message(self, frame, tag_ok, default_auth_key, error):
        if frame.tag is None:
            why = "the frame carries no tag to tell"
            if self.auth_key is not None:
                why = _NO_TAG_AK
        elif tag_ok is False:
            why = "nor does the tag verify with %s" % _default_name(default_auth_key)
        else:
            why = "the tag was not checked: no authentication key"
        return "%s (%s; parser: %s)" % (_WRONG_EK, why, _error_text(error))

    def _warnings(self, frame, tag_ok, auth_key):
        if frame.tag is None:
            return [_NO_TAG_AK] if self.auth_key is not None else []
        if tag_ok is False:  # only reached with the caller's default key
            return ["the tag did not verify with %s: this meter needs its own authentication key "
                    "(as the Austrian T210-D has) to authenticate its frames" % _default_name(auth_key)]
        if tag_ok is None:
            if self.key is None:
                return ["no encryption key: the tag of this authentication-only frame is not checked"]
            return ["no authentication key: the frame's tag is not checked, its data is not authenticated"]
        return []


def _default_name(auth_key):
    if auth_key == LUXEMBOURG_AK:
        return "the Luxembourg default authentication key"
    return "the default authentication key"


def _error_text(error):
    return error.args[0] if error.args else type(error).__name__
