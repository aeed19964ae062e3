"""The admin password and login sessions.

The password is never stored: config holds "sha256$<salt hex>$<digest hex>", the digest being
SHA-256 iterated ROUNDS times over salt + password (hashlib; hardware SHA on the ESP32).
A request is authorized by the `mk_session` cookie from POST /api/login, or by HTTP Basic auth
with user `admin`. Sessions live in RAM (a reboot logs everyone out), at most MAX_SESSIONS.
"""
import hashlib
import os
from binascii import a2b_base64, hexlify

ROUNDS = 1000
MAX_SESSIONS = 8
SESSION_S = 12 * 3600
COOKIE = "mk_session"
PREFIX = "sha256$"


def _digest(salt, password):
    digest = salt + password.encode()
    for _ in range(ROUNDS):
        digest = hashlib.sha256(salt + digest).digest()
    return hexlify(digest).decode()


def hash_password(password, salt=None):
    salt = salt or os.urandom(8)
    return PREFIX + hexlify(salt).decode() + "$" + _digest(salt, password)


def is_hash(text):
    parts = text.split("$")
    return len(parts) == 3 and parts[0] + "$" == PREFIX and len(parts[1]) == 16 \
        and len(parts[2]) == 64 and not [c for c in parts[1] + parts[2] if c not in "0123456789abcdef"]


def check_password(password, stored):
    """True when password matches the stored hash (compared in constant time)."""
    if not stored or not is_hash(stored) or not isinstance(password, str):
        return False
    _, salt, digest = stored.split("$")
    from binascii import unhexlify
    return same(_digest(unhexlify(salt), password), digest)


def same(a, b):
    if len(a) != len(b):
        return False
    diff = 0
    for x, y in zip(a, b):
        diff |= ord(x) ^ ord(y)
    return diff == 0


def cookie_value(header, name=COOKIE):
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def basic_password(header):
    """The password of `Authorization: Basic base64(admin:password)`, else None."""
    if not header.startswith("Basic "):
        return None
    try:
        user, colon, password = a2b_base64(header[6:].strip()).decode().partition(":")
    except (ValueError, UnicodeError):
        return None
    return password if colon and user == "admin" else None


class Sessions:
    def __init__(self, clock, store=None):
        self.clock = clock          # () -> seconds, monotonic enough
        # [token, expires_s], newest first; changed in place, so a caller's store outlives us
        self._open = [] if store is None else store

    def new(self):
        token = hexlify(os.urandom(16)).decode()
        self._open[:] = [[token, self.clock() + SESSION_S]] + self._open[:MAX_SESSIONS - 1]
        return token

    def valid(self, token):
        now = self.clock()
        self._open[:] = [entry for entry in self._open if entry[1] > now]
        return bool(token) and any(same(token, entry[0]) for entry in self._open)

    def drop(self, token):
        self._open[:] = [entry for entry in self._open if entry[0] != token]

    def clear(self):
        self._open[:] = []


def authorized(request, stored_hash, sessions):
    """No admin password yet (setup mode): open. Otherwise a session cookie or Basic auth."""
    if not stored_hash:
        return True
    if sessions.valid(cookie_value(request.header("cookie"))):
        return True
    password = basic_password(request.header("authorization"))
    return password is not None and check_password(password, stored_hash)


def session_cookie(token, max_age=SESSION_S):
    return "%s=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%d" % (COOKIE, token, max_age)
