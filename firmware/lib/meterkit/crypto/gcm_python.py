"""AES-128-GCM reference in plain Python: slow, but runs everywhere and checks the fast backends.

Counter mode and GHASH follow NIST SP 800-38D literally (96-bit IV only, as DLMS uses), with
GF(2^128) elements as Python integers. The AES block function is cryptolib's ECB on MicroPython;
elsewhere it is the small AES-128 encryptor below (FIPS-197), so that on CPython this backend
shares no code with the `cryptography` one it is compared against.
"""
from .gcm import same_tag

try:
    from cryptolib import aes as _cryptolib_aes
except ImportError:
    _cryptolib_aes = None

_R = 0xE1 << 120  # GHASH reduction polynomial x^128 + x^7 + x^2 + x + 1, bit-reflected


# --- AES-128 encryption of one block (only used where cryptolib is missing) -----------------

_SBOX = []


def _xtime(b):
    """Multiply a byte by x in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1."""
    b <<= 1
    return b ^ 0x11B if b & 0x100 else b


def _build_sbox():
    # Walk every nonzero byte as p = 3^k while q walks 3^-k: q is then p's multiplicative inverse,
    # and the S-box entry is that inverse through the FIPS-197 affine transform.
    sbox = [0x63] * 256
    p = q = 1
    while True:
        p ^= _xtime(p)
        q ^= q << 1
        q ^= q << 2
        q ^= q << 4
        q &= 0xFF
        if q & 0x80:
            q ^= 0x09
        affine = q
        for shift in (1, 2, 3, 4):
            affine ^= ((q << shift) | (q >> (8 - shift))) & 0xFF
        sbox[p] = affine ^ 0x63
        if p == 1:
            break
    _SBOX.extend(sbox)


def _expand_key(key):
    """The 11 round keys as one list of 176 bytes."""
    if not _SBOX:
        _build_sbox()
    words = list(key)
    rcon = 1
    for i in range(16, 176, 4):
        t = words[i - 4:i]
        if i % 16 == 0:
            t = [_SBOX[t[1]] ^ rcon, _SBOX[t[2]], _SBOX[t[3]], _SBOX[t[0]]]
            rcon = _xtime(rcon)
        for j in range(4):
            words.append(t[j] ^ words[i - 16 + j])
    return words


def _mix_column(a0, a1, a2, a3):
    x0, x1, x2, x3 = _xtime(a0), _xtime(a1), _xtime(a2), _xtime(a3)
    return (x0 ^ x1 ^ a1 ^ a2 ^ a3, a0 ^ x1 ^ x2 ^ a2 ^ a3,
            a0 ^ a1 ^ x2 ^ x3 ^ a3, x0 ^ a0 ^ a1 ^ a2 ^ x3)


def _aes_encrypt_block(round_keys, block):
    sbox = _SBOX
    state = [block[i] ^ round_keys[i] for i in range(16)]  # byte 4*column + row
    for rnd in range(1, 11):
        # SubBytes and ShiftRows together: row r moves r columns to the left
        state = [sbox[state[(i + 4 * (i % 4)) % 16]] for i in range(16)]
        if rnd < 10:
            mixed = []
            for c in range(0, 16, 4):
                mixed.extend(_mix_column(state[c], state[c + 1], state[c + 2], state[c + 3]))
            state = mixed
        base = 16 * rnd
        state = [state[i] ^ round_keys[base + i] for i in range(16)]
    return bytes(state)


def _block_cipher(key):
    """A function that AES-encrypts one 16-byte block under `key`."""
    if _cryptolib_aes is not None:
        return _cryptolib_aes(bytes(key), 1).encrypt
    round_keys = _expand_key(key)
    return lambda block: _aes_encrypt_block(round_keys, block)


# --- GCM --------------------------------------------------------------------------------------

def _int(block):
    return int.from_bytes(block, "big")


def _gf_mult(x, y):
    """x * y in GHASH's GF(2^128) (SP 800-38D, algorithm 1)."""
    z = 0
    v = y
    for i in range(127, -1, -1):
        if (x >> i) & 1:
            z ^= v
        v = (v >> 1) ^ _R if v & 1 else v >> 1
    return z


def _ghash(h, aad, ciphertext):
    x = 0
    for data in (aad, ciphertext):
        for pos in range(0, len(data), 16):
            block = data[pos:pos + 16]
            x = _gf_mult(x ^ (_int(block) << (8 * (16 - len(block)))), h)
    lengths = ((8 * len(aad)) << 64) | (8 * len(ciphertext))
    return _gf_mult(x ^ lengths, h)


def _counter_block(iv, counter):
    return bytes(iv) + (counter & 0xFFFFFFFF).to_bytes(4, "big")


def _ctr(encrypt_block, iv, data):
    """XOR `data` with the keystream E(J0 + 1), E(J0 + 2), ..."""
    out = []
    for n, pos in enumerate(range(0, len(data), 16)):
        block = data[pos:pos + 16]
        keystream = _int(encrypt_block(_counter_block(iv, n + 2))[:len(block)])
        out.append((_int(block) ^ keystream).to_bytes(len(block), "big"))
    return b"".join(out)


def _full_tag(encrypt_block, iv, aad, ciphertext):
    h = _int(encrypt_block(bytes(16)))
    s = _ghash(h, aad, ciphertext)
    return (s ^ _int(encrypt_block(_counter_block(iv, 1)))).to_bytes(16, "big")


def decrypt(key, iv, ciphertext, aad=b"", tag=None):
    encrypt_block = _block_cipher(key)
    plaintext = _ctr(encrypt_block, iv, ciphertext)
    if tag is None:
        return plaintext, None
    return plaintext, same_tag(_full_tag(encrypt_block, iv, aad, ciphertext), tag)


def encrypt(key, iv, plaintext, aad=b"", tag_len=12):
    encrypt_block = _block_cipher(key)
    ciphertext = _ctr(encrypt_block, iv, plaintext)
    return ciphertext, _full_tag(encrypt_block, iv, aad, ciphertext)[:tag_len]
