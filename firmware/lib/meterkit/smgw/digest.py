"""HTTP Digest access authentication (RFC 7616) as the gateways ask for it: MD5 or SHA-256
(and their -sess forms), qop "auth" or none, the nonce counted per request.

    digest = Digest(user, password, force_md5=False)
    digest.challenge(www_authenticate)      # a 401's header: learn realm, nonce, algorithm, qop
    digest.authorization(method, uri)       # the Authorization header's value (None: no challenge
                                            # seen yet); every call counts the nonce up
    digest.answer(www_authenticate, sent)   # after a 401: True when the request should go again

force_md5 answers with MD5 whatever the challenge names: Theben CONEXA firmware offers SHA-256
but checks MD5 (jannickfahlbusch/ha-ppc-smgw PR #165, issue #160).
"""
import hashlib
import os
from binascii import hexlify

from . import GatewayError

_HASHES = (("MD5", "md5"), ("SHA-256", "sha256"))


def fields(header):
    """'Digest realm="x", qop="auth", nonce=abc' -> {"realm": "x", "qop": "auth", "nonce": "abc"}.
    Quoted values may hold commas and backslash-escaped quotes."""
    out, rest = {}, header.strip()
    if rest[:7].lower() == "digest ":
        rest = rest[7:]
    while rest:
        key, eq, rest = rest.lstrip(" ,").partition("=")
        if not eq:
            break
        rest = rest.lstrip()
        if rest[:1] == '"':
            value, at = [], 1
            while at < len(rest) and rest[at] != '"':
                if rest[at] == "\\":
                    at += 1
                value.append(rest[at:at + 1])
                at += 1
            value, rest = "".join(value), rest[at + 1:]
        else:
            value, _, rest = rest.partition(",")
        out[key.strip().lower()] = value.strip()
    return out


def _hex(name, text):
    return hexlify(getattr(hashlib, name)(text.encode()).digest()).decode()


class Digest:
    def __init__(self, user, password, force_md5=False):
        self.user, self.password, self.force_md5 = user, password, force_md5
        self.known = None   # the challenge's fields
        self.count = 0

    def challenge(self, header):
        """Learn a 401's WWW-Authenticate; True if it is a digest challenge we can answer."""
        if not isinstance(header, str) or header.strip()[:7].lower() != "digest ":
            return False
        known = fields(header)
        if "nonce" not in known or "realm" not in known:
            return False
        spelled = known.get("algorithm", "MD5")
        algorithm = spelled.upper()
        if self.force_md5:
            sess = algorithm.endswith("-SESS")
            algorithm, spelled = ("MD5-SESS", "MD5-sess") if sess else ("MD5", "MD5")
        if self._hash(algorithm) is None:
            raise GatewayError("auth", "the gateway asks for digest algorithm %s; meterkit "
                               "answers MD5 and SHA-256" % known.get("algorithm"))
        known["algorithm"], known["spelled"] = algorithm, spelled
        qops = [q.strip() for q in known.get("qop", "").split(",")]
        if known.get("qop") and "auth" not in qops:
            raise GatewayError("auth", "the gateway asks for digest qop %s; meterkit answers "
                               "qop auth" % known["qop"])
        self.known, self.count = known, 0
        return True

    def answer(self, header, sent):
        """After a 401: True when the request should go again, answering its challenge. Once
        only, unless the gateway calls the nonce stale: each refused answer to a wrong password
        counts towards the HAN login's lockout."""
        stale = isinstance(header, str) and "stale=true" in header.lower().replace('"', "")
        return (not sent or stale) and self.challenge(header)

    @staticmethod
    def _hash(algorithm):
        base = algorithm[:-5] if algorithm.endswith("-SESS") else algorithm
        for name, module_name in _HASHES:
            if base == name:
                return module_name
        return None

    def authorization(self, method, uri):
        c = self.known
        if c is None:
            return None
        self.count += 1
        algorithm = c["algorithm"]
        h = self._hash(algorithm)
        nc = "%08x" % self.count
        cnonce = hexlify(os.urandom(8)).decode()
        ha1 = _hex(h, "%s:%s:%s" % (self.user, c["realm"], self.password))
        if algorithm.endswith("-SESS"):
            ha1 = _hex(h, "%s:%s:%s" % (ha1, c["nonce"], cnonce))
        ha2 = _hex(h, "%s:%s" % (method, uri))
        parts = ['username="%s"' % _quoted(self.user), 'realm="%s"' % _quoted(c["realm"]),
                 'nonce="%s"' % _quoted(c["nonce"]), 'uri="%s"' % _quoted(uri)]
        if "qop" in c:
            response = _hex(h, ":".join((ha1, c["nonce"], nc, cnonce, "auth", ha2)))
            parts += ['response="%s"' % response, "qop=auth", "nc=" + nc,
                      'cnonce="%s"' % cnonce]
        else:   # RFC 2069
            parts.append('response="%s"' % _hex(h, ":".join((ha1, c["nonce"], ha2))))
        parts.append("algorithm=" + c["spelled"])
        if "opaque" in c:
            parts.append('opaque="%s"' % _quoted(c["opaque"]))
        return "Digest " + ", ".join(parts)


def _quoted(text):
    return text.replace("\\", "\\\\").replace('"', '\\"')
