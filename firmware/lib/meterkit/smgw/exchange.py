"""What a family asks of the transport, and how an answer's body is read.

    Request(method, path, what, body=b"", headers=(), answer=None, auth=True, login=False)
        what: names the request in messages; headers: [(name, value)] besides Content-Length;
        answer: feed(bytes) with the body as it arrives, then close(); login: a new session
        starts here (forget the cookies of the last one); auth: answer a digest challenge
    JsonAnswer(limit): the body kept up to `limit` bytes and read as JSON (load())

The transport sets answer.cookies (the names of the cookies the answer set) before close().
Both transports word their failures alike: refusal(), timeout_message(), pretty().
"""
from . import GatewayError
from meterkit.reading import json_string

FORM = ("Content-Type", "application/x-www-form-urlencoded")
JSON_LIMIT = 32768    # a JSON answer is a few KB: the dongle's heap bounds what it keeps
_SAFE = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"


class Request:
    def __init__(self, method, path, what, body=b"", headers=(), answer=None, auth=True,
                 login=False):
        self.method, self.path, self.what = method, path, what
        self.body, self.headers = body, headers
        self.answer = answer if answer is not None else JsonAnswer()
        self.auth, self.login = auth, login


class JsonAnswer:
    cookies = ()

    def __init__(self, limit=JSON_LIMIT):
        self.limit = limit
        self.size = 0
        self._body = bytearray()

    def feed(self, data):
        self.size += len(data)
        if self.size <= self.limit:
            self._body.extend(data)

    def close(self):
        pass

    def load(self, what):
        """The parsed document; GatewayError naming `what` (and why) when it is not JSON."""
        if self.size > self.limit:
            raise GatewayError("format", "%s: the answer has %d bytes, more than the %d kept" % (
                what, self.size, self.limit))
        import json
        try:
            return json.loads(bytes(self._body).decode())
        except ValueError as e:   # bad JSON, or bad UTF-8 (a ValueError too)
            raise GatewayError("format", "%s is not JSON (%s; %d bytes)" % (what, e, self.size))


def quote(text):
    """Percent-encoding of a URL path segment or form value (RFC 3986 unreserved kept)."""
    data = text.encode()
    for byte in data:
        if byte not in _SAFE:
            break
    else:
        return text   # most ids and tokens: nothing to copy
    out = []
    for byte in data:
        out.append(chr(byte) if byte in _SAFE else "%%%02X" % byte)
    return "".join(out)


def form(pairs):
    """[(name, value)] -> an application/x-www-form-urlencoded body, in the given order."""
    return "&".join("%s=%s" % (quote(name), quote(value)) for name, value in pairs).encode()


def json_body(pairs):
    """[(name, text)] -> a JSON object as bytes, keys in the given order (dicts keep none on
    MicroPython)."""
    return ("{%s}" % ", ".join("%s: %s" % (json_string(k), json_string(v))
                               for k, v in pairs)).encode()


def refusal(status, where, user, what):
    """The GatewayError for an answer that is not 2xx, or None."""
    if status == 401:
        return GatewayError("auth", "the gateway at %s refused user %r (HTTP 401 on %s): wrong "
                            "user name or password? Use the HAN credentials from the metering "
                            "point operator; repeated failures can lock the HAN login" % (
                                where, user, what))
    if status == 403:
        return GatewayError("auth", "the gateway at %s denied %s (HTTP 403): this user may not "
                            "read it" % (where, what))
    if not 200 <= status < 300:
        return GatewayError("http", "the gateway at %s answered HTTP %d to %s" % (
            where, status, what))
    return None


def timeout_message(where, what, seconds, silent_on_bad_login):
    hint = (" (a Theben Conexa stays silent when the user name or password is wrong)"
            if silent_on_bad_login else "")
    return "no answer from %s to %s within %d s%s" % (where, what, seconds, hint)


def pretty(fingerprint):
    """A SHA-256 in hex -> 'AB:CD:…' (32 pairs), as browsers show it."""
    digest = fingerprint.replace(":", "").upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))
