"""RSA PKCS#1 v1.5 signature check with SHA-256 (RSASSA-PKCS1-v1_5, RFC 8017 8.2.2), pure Python.

    key = public_key(doc)            # {"n": "<hex>", "e": 65537, "key_id": "..."} (keys/ota_public.json)
    verify(key, message, signature)  # True or False, never raises on a bad signature

The device holds only the public key. Verifying is one modular power with the public exponent
(17 squarings for 65537: big-int `pow` does it on MicroPython and CPython alike), then the whole
EMSA-PKCS1-v1_5 encoding is rebuilt and compared byte for byte: no parsing of the padding, so
no room for the lenient-parser forgeries (Bleichenbacher 2006) that a parse-and-pick check has.
"""
from binascii import hexlify, unhexlify
from hashlib import sha256

# DER of DigestInfo{AlgorithmIdentifier{sha256, NULL}, OCTET STRING(32)} (RFC 8017 9.2 note 1)
SHA256_PREFIX = unhexlify("3031300d060960864801650304020105000420")
MIN_BITS = 2048


class PublicKey:
    def __init__(self, n, e, key_id):
        self.n, self.e, self.key_id = n, e, key_id
        self.size = (_bit_length(n) + 7) // 8   # k, the modulus length in bytes


def _bit_length(n):
    bits = 0
    while n >> (bits + 64):
        bits += 64
    while n >> bits:
        bits += 1
    return bits


def key_id(n):
    """The key's name: first 8 bytes of sha256 over the modulus as big-endian bytes, hex."""
    data = _to_bytes(n, (_bit_length(n) + 7) // 8)
    return hexlify(sha256(data).digest()[:8]).decode()


def public_key(doc):
    """A PublicKey from the JSON document; ValueError says what is wrong with it."""
    try:
        n = int(doc["n"], 16)
        e = doc["e"]
    except (KeyError, TypeError, ValueError):
        raise ValueError("not an OTA public key: needs n (hex) and e")
    if type(e) is not int or e < 3 or not e & 1:
        raise ValueError("not an OTA public key: e must be an odd number >= 3")
    if _bit_length(n) < MIN_BITS:
        raise ValueError("not an OTA public key: the modulus has fewer than %d bits" % MIN_BITS)
    kid = key_id(n)
    if doc.get("key_id", kid) != kid:
        raise ValueError("not an OTA public key: key_id does not match n")
    return PublicKey(n, e, kid)


def _to_bytes(number, size):
    """Big-endian, exactly size bytes (int.to_bytes with positional byte order on both runtimes)."""
    return number.to_bytes(size, "big")


def expected_encoding(digest, size):
    """EM = 00 01 FF..FF 00 DigestInfo, size bytes long (RFC 8017 9.2)."""
    info = SHA256_PREFIX + digest
    return b"\x00\x01" + b"\xff" * (size - len(info) - 3) + b"\x00" + info


def verify(key, message, signature, digest=None):
    """True if signature is key's RSASSA-PKCS1-v1_5 SHA-256 signature over message.

    digest: sha256(message) when the caller hashed a stream already (message is then ignored)."""
    if len(signature) != key.size:
        return False
    s = int.from_bytes(signature, "big")
    if s >= key.n:
        return False
    em = _to_bytes(pow(s, key.e, key.n), key.size)
    if digest is None:
        digest = sha256(message).digest()
    return _same(em, expected_encoding(digest, key.size))


def _same(a, b):
    """Compare without an early exit (the data is public here, but it costs nothing)."""
    if len(a) != len(b):
        return False
    diff = 0
    for x, y in zip(a, b):
        diff |= x ^ y
    return diff == 0
