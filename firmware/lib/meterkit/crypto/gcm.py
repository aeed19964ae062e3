"""AES-128-GCM behind one interface; the fastest backend this runtime has is chosen at import.

    decrypt(key, iv, ciphertext, aad=b"", tag=None) -> (plaintext, tag_ok)
    encrypt(key, iv, plaintext, aad=b"", tag_len=12) -> (ciphertext, tag)

`tag=None` is an encryption-only frame (AES-CTR from J0 + 1): tag_ok is None. With a tag (4..16
bytes; DLMS sends 12) the plaintext is always returned and tag_ok says whether the tag matched:
the security layer needs the plaintext to tell a wrong encryption key from a wrong
authentication key. The IV is 12 bytes (DLMS: system title || frame counter).

Backends, best first: "cmodule" (the firmware's C module wrapping mbedtls), "viper"
(MicroPython: cryptolib ECB + viper GHASH), "cpython" (the `cryptography` package), "python"
(plain-Python reference).
"""

ORDER = ("cmodule", "viper", "cpython", "python")


def same_tag(full_tag, tag):
    """Compare `tag` with the start of `full_tag`, touching every byte whatever differs.

    (Defined before the backends load: gcm_python and gcm_viper import it from here.)"""
    diff = 0
    for i in range(len(tag)):
        diff |= full_tag[i] ^ tag[i]
    return diff == 0


class _CModule:
    """Adapts meterkit_c.gcm_decrypt/gcm_encrypt to this interface."""

    def __init__(self, module):
        self.module = module

    def decrypt(self, key, iv, ciphertext, aad=b"", tag=None):
        plaintext, tag_ok = self.module.gcm_decrypt(key, iv, ciphertext, aad, tag)
        return plaintext, (None if tag is None else bool(tag_ok))

    def encrypt(self, key, iv, plaintext, aad=b"", tag_len=12):
        return self.module.gcm_encrypt(key, iv, plaintext, aad, tag_len)


def _load(name):
    """The backend called `name`, or None when this runtime cannot run it."""
    try:
        if name == "cmodule":
            import meterkit_c
            if hasattr(meterkit_c, "gcm_decrypt") and hasattr(meterkit_c, "gcm_encrypt"):
                return _CModule(meterkit_c)
            return None
        if name == "viper":
            from . import gcm_viper
            return gcm_viper
        if name == "cpython":
            from . import gcm_cpython
            return gcm_cpython
        if name == "python":
            from . import gcm_python
            return gcm_python
    except ImportError:
        return None
    raise ValueError("unknown GCM backend %r (known: %s)" % (name, ", ".join(ORDER)))


def available():
    """Names of the backends usable on this runtime, best first."""
    return [name for name in ORDER if _load(name) is not None]


def backend(name):
    """The backend `name` (an object with decrypt/encrypt), for tests and benchmarks."""
    chosen = _load(name)
    if chosen is None:
        raise ValueError("GCM backend %r is not available here (available: %s)"
                         % (name, ", ".join(available())))
    return chosen


def _choose():
    from .. import PURE_PYTHON
    for name in ("python",) if PURE_PYTHON else ORDER:
        chosen = _load(name)
        if chosen is not None:
            return name, chosen
    raise ImportError("no AES-GCM backend")  # unreachable: the python backend always loads


BACKEND, _backend = _choose()


def use(name):
    """Make backend `name` the one every caller gets (benchmarks and path comparisons)."""
    global BACKEND, _backend
    _backend = backend(name)
    BACKEND = name


def _check(key, iv):
    if len(key) != 16:
        raise ValueError("AES-128-GCM needs a 16-byte key, got %d bytes" % len(key))
    if len(iv) != 12:
        raise ValueError("the GCM IV must be 12 bytes (system title + frame counter), got %d" % len(iv))


def decrypt(key, iv, ciphertext, aad=b"", tag=None):
    _check(key, iv)
    if tag is not None and not 4 <= len(tag) <= 16:
        raise ValueError("a GCM tag is 4 to 16 bytes, got %d" % len(tag))
    return _backend.decrypt(key, iv, ciphertext, aad, tag)


def encrypt(key, iv, plaintext, aad=b"", tag_len=12):
    _check(key, iv)
    if not 4 <= tag_len <= 16:
        raise ValueError("a GCM tag is 4 to 16 bytes, not %d" % tag_len)
    return _backend.encrypt(key, iv, plaintext, aad, tag_len)
