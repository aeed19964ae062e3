"""AES-128-GCM for MicroPython: cryptolib AES-ECB makes the keystream, viper does GHASH and XOR.

ESP32's cryptolib has ECB but no CTR or GCM, so counter mode is built from many counter blocks
encrypted in one ECB call (per chunk, to bound the heap). GHASH runs on four 32-bit words in
@micropython.viper. Every left shift is masked to 32 bits, so the same code gives the same
answer on the 64-bit unix port (64-bit machine words) and on the ESP32 (32-bit, xtensawin).
The 128-bit GHASH values are kept as four numbers (most significant first) in a bytearray
read through ptr32; their in-memory byte order never matters.
"""
import micropython
from cryptolib import aes

from .gcm import same_tag

_CHUNK = 512  # keystream bytes per ECB call: large enough to amortize the call, small for the heap
_last_key = [None, None, None]  # key, ECB object, H as words: frames of one meter share a key


@micropython.viper
def _ghash_blocks(x: ptr32, h: ptr32, data: ptr8, n: int):
    """x = (x ^ block) * h for each 16-byte block of data[0:n] (n a multiple of 16)."""
    mask = uint(0xFFFF)
    mask = (mask << 16) | mask
    r = uint(0xE1) << 24
    h0 = uint(h[0])
    h1 = uint(h[1])
    h2 = uint(h[2])
    h3 = uint(h[3])
    x0 = uint(x[0])
    x1 = uint(x[1])
    x2 = uint(x[2])
    x3 = uint(x[3])
    pos = 0
    while pos < n:
        x0 ^= (uint(data[pos]) << 24) | (uint(data[pos + 1]) << 16) | (uint(data[pos + 2]) << 8) | uint(data[pos + 3])
        x1 ^= (uint(data[pos + 4]) << 24) | (uint(data[pos + 5]) << 16) | (uint(data[pos + 6]) << 8) | uint(data[pos + 7])
        x2 ^= (uint(data[pos + 8]) << 24) | (uint(data[pos + 9]) << 16) | (uint(data[pos + 10]) << 8) | uint(data[pos + 11])
        x3 ^= (uint(data[pos + 12]) << 24) | (uint(data[pos + 13]) << 16) | (uint(data[pos + 14]) << 8) | uint(data[pos + 15])
        # z = x * h: walk x's bits from x^0 (top bit of x0); v runs through h * x^i
        z0 = uint(0)
        z1 = uint(0)
        z2 = uint(0)
        z3 = uint(0)
        v0 = h0
        v1 = h1
        v2 = h2
        v3 = h3
        k = 0
        while k < 4:
            w = x0
            if k == 1:
                w = x1
            elif k == 2:
                w = x2
            elif k == 3:
                w = x3
            j = 0
            while j < 32:
                take = uint(0) - (w >> 31)  # all ones when this bit of x is set
                w = (w << 1) & mask
                z0 ^= v0 & take
                z1 ^= v1 & take
                z2 ^= v2 & take
                z3 ^= v3 & take
                reduce = uint(0) - (v3 & 1)
                v3 = (v3 >> 1) | ((v2 << 31) & mask)
                v2 = (v2 >> 1) | ((v1 << 31) & mask)
                v1 = (v1 >> 1) | ((v0 << 31) & mask)
                v0 = (v0 >> 1) ^ (r & reduce)
                j += 1
            k += 1
        x0 = z0
        x1 = z1
        x2 = z2
        x3 = z3
        pos += 16
    x[0] = x0
    x[1] = x1
    x[2] = x2
    x[3] = x3


@micropython.viper
def _load_words(words: ptr32, block: ptr8):
    """16 big-endian bytes -> four 32-bit numbers."""
    k = 0
    while k < 4:
        i = k << 2
        words[k] = (uint(block[i]) << 24) | (uint(block[i + 1]) << 16) | (uint(block[i + 2]) << 8) | uint(block[i + 3])
        k += 1


@micropython.viper
def _xor_words_into(block: ptr8, words: ptr32):
    """block ^= the four 32-bit numbers as 16 big-endian bytes."""
    k = 0
    while k < 4:
        w = uint(words[k])
        i = k << 2
        block[i] ^= (w >> 24) & 0xFF
        block[i + 1] ^= (w >> 16) & 0xFF
        block[i + 2] ^= (w >> 8) & 0xFF
        block[i + 3] ^= w & 0xFF
        k += 1


@micropython.viper
def _fill_counters(blocks: ptr8, iv: ptr8, counter: uint, count: int):
    """Write `count` counter blocks iv || counter, iv || counter + 1, ... (32-bit big-endian)."""
    i = 0
    while i < count:
        base = i << 4
        j = 0
        while j < 12:
            blocks[base + j] = iv[j]
            j += 1
        blocks[base + 12] = (counter >> 24) & 0xFF
        blocks[base + 13] = (counter >> 16) & 0xFF
        blocks[base + 14] = (counter >> 8) & 0xFF
        blocks[base + 15] = counter & 0xFF
        counter += 1
        i += 1


@micropython.viper
def _xor_into(dst: ptr8, src: ptr8, keystream: ptr8, n: int):
    i = 0
    while i < n:
        dst[i] = src[i] ^ keystream[i]
        i += 1


def _prepare(key):
    """The ECB object and the hash key H = E(K, 0) as words, cached for the last key."""
    if _last_key[0] != key:
        ecb = aes(bytes(key), 1)
        h_block = bytearray(16)
        ecb.encrypt(h_block, h_block)
        h = bytearray(16)
        _load_words(h, h_block)
        _last_key[0] = bytes(key)
        _last_key[1] = ecb
        _last_key[2] = h
    return _last_key[1], _last_key[2]


def _ctr(ecb, iv, data):
    """data XOR the keystream E(J0 + 1), E(J0 + 2), ..., made one chunk per ECB call."""
    n = len(data)
    out = bytearray(n)
    keystream = bytearray(min(n, _CHUNK) + 15 & ~15)
    out_view = memoryview(out)
    data_view = memoryview(data)
    counter = 2
    pos = 0
    while pos < n:
        size = min(_CHUNK, n - pos)
        count = (size + 15) >> 4
        _fill_counters(keystream, iv, counter, count)
        ecb.encrypt(keystream, keystream)
        _xor_into(out_view[pos:], data_view[pos:], keystream, size)
        counter += count
        pos += size
    return bytes(out)


def _ghash_update(x, h, data):
    full = len(data) & ~15
    if full:
        _ghash_blocks(x, h, data, full)
    if full < len(data):
        block = bytearray(16)
        block[:len(data) - full] = data[full:]
        _ghash_blocks(x, h, block, 16)


def _full_tag(ecb, h, iv, aad, ciphertext):
    x = bytearray(16)
    _ghash_update(x, h, aad)
    _ghash_update(x, h, ciphertext)
    lengths = (8 * len(aad)).to_bytes(8, "big") + (8 * len(ciphertext)).to_bytes(8, "big")
    _ghash_blocks(x, h, lengths, 16)
    tag = bytearray(16)
    tag[:12] = iv
    tag[15] = 1
    ecb.encrypt(tag, tag)  # E(K, J0)
    _xor_words_into(tag, x)
    return tag


def decrypt(key, iv, ciphertext, aad=b"", tag=None):
    ecb, h = _prepare(key)
    plaintext = _ctr(ecb, iv, ciphertext)
    if tag is None:
        return plaintext, None
    return plaintext, same_tag(_full_tag(ecb, h, iv, aad, ciphertext), tag)


def encrypt(key, iv, plaintext, aad=b"", tag_len=12):
    ecb, h = _prepare(key)
    ciphertext = _ctr(ecb, iv, plaintext)
    return ciphertext, bytes(_full_tag(ecb, h, iv, aad, ciphertext)[:tag_len])
