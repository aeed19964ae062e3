"""The dongle's HTTPS to a Smart Meter Gateway: one kept-alive TLS connection (MicroPython's
mbedtls `tls`), the certificate pinned by SHA-256, HTTP/1.1 with digest auth (meterkit.smgw.digest)
and the session cookies, answers streamed into the family's reader in small chunks. Every wait is
bounded; nothing blocks the event loop but mbedtls' own handshake steps.

    link = Link(host, port, user, password, pin, timeout_ms, force_md5)
    await link.exchange(request)    # a meterkit.smgw.exchange.Request; GatewayError unless 2xx
    link.seen                       # the SHA-256 the gateway showed (hex), for trust on first use
    link.close()

The pin is checked in the handshake itself (verify_callback): a certificate that differs fails
the handshake, so no request, and no credential, ever reaches it.
"""
import asyncio
from binascii import hexlify
from hashlib import sha256

from meterkit.smgw import GatewayError
from meterkit.smgw.digest import Digest
from meterkit.smgw.exchange import pretty, refusal, timeout_message

CHUNK = 512          # bytes read from the socket at a time, into one buffer
MAX_LINE = 4096      # a status or header line; more is a broken answer
MAX_HEAD = 16384


def _within(awaitable, ms):
    if hasattr(asyncio, "wait_for_ms"):
        return asyncio.wait_for_ms(awaitable, ms)
    return asyncio.wait_for(awaitable, ms / 1000)


class Link:
    def __init__(self, host, port, user, password, pin, timeout_ms, force_md5=False):
        self.host, self.port, self.pin = host, port, pin
        self.where = "%s:%d" % (host, port)
        self.user = user
        self.timeout_ms = timeout_ms
        self.digest = Digest(user, password, force_md5)
        self.silent_on_bad_login = False
        self.seen = None           # the fingerprint of the last handshake
        self.refused = False       # ... and whether it differed from the pin
        self.cookies = {}
        self.date = None           # the last Date header: the gateway's clock
        self._stream = None
        self._buf = bytearray(CHUNK)
        self._view = memoryview(self._buf)
        self._start = self._end = 0   # unread bytes: _buf[_start:_end]

    # -- the connection ------------------------------------------------------------------------

    def _check(self, cert, depth):
        """mbedtls' verify callback: 0 goes on, anything else fails the handshake."""
        if depth:
            return 0
        self.seen = hexlify(sha256(cert).digest()).decode()
        self.refused = bool(self.pin) and self.seen != self.pin
        if not self.pin:   # trust on first use: the connections after it must show the same
            self.pin = self.seen
        return -1 if self.refused else 0

    async def _open(self):
        import tls
        context = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
        # self-signed: no CA can vouch for it (CERT_OPTIONAL goes on without one, and calls the
        # callback, where the pin decides)
        context.verify_mode = tls.CERT_OPTIONAL
        context.verify_callback = self._check
        self.seen, self.refused = None, False
        try:
            _, self._stream = await _within(asyncio.open_connection(
                self.host, self.port, ssl=context, server_hostname=self.host), self.timeout_ms)
        except asyncio.TimeoutError:
            raise GatewayError("unreachable", "no connection to %s within %d s: is the HAN port "
                               "cabled, and has the dongle an address in the gateway's network?"
                               % (self.where, self.timeout_ms // 1000))
        except OSError as e:
            raise GatewayError("unreachable", "cannot reach %s (%s)" % (self.where, _reason(e)))
        self._start = self._end = 0

    def _lost(self, error, what):
        """The GatewayError for an OSError/ValueError of the socket or of TLS."""
        self.close()
        if self.refused:
            return GatewayError("cert_changed", "the certificate of %s changed: pinned SHA-256 %s, "
                                "now %s. No credentials were sent. If the gateway was replaced or "
                                "renewed its certificate, check the new fingerprint and set "
                                "smgw.pin to it (or empty it: the next one shown is pinned)"
                                % (self.where, pretty(self.pin), pretty(self.seen)))
        code = error.args[0] if error.args and isinstance(error.args[0], int) else 0
        if isinstance(error, ValueError) or code < 0:   # mbedtls' errors are negative
            return GatewayError("tls", "TLS with %s failed (%s)" % (self.where, _reason(error)))
        return GatewayError("unreachable", "lost the connection to %s during %s (%s)" % (
            self.where, what, _reason(error)))

    def close(self):
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.s.close()
            except (OSError, AttributeError):
                pass

    # -- HTTP ----------------------------------------------------------------------------------

    async def exchange(self, request):
        """Send request (with digest auth once challenged) and read the answer into
        request.answer; GatewayError unless the gateway answered 2xx."""
        if request.login:
            self.cookies = {}
        sent = False
        for _ in range(3):   # the challenge, then at most one answer to it (or a stale nonce)
            auth = self.digest.authorization(request.method, request.path) \
                if request.auth else None
            status, head = await self._send(request, auth)
            if status == 401 and request.auth and \
                    self.digest.answer(head.get("www-authenticate"), sent or auth is not None):
                sent = True
                await self._body(head, None)
                continue
            break
        refused = refusal(status, self.where, self.user, request.what)
        if refused is not None:
            try:
                await self._body(head, None)   # the connection stays usable: a logout follows
            except GatewayError:
                self.close()
            raise refused
        answer = request.answer
        await self._body(head, answer)
        answer.cookies = head.get("set-cookie", ())
        answer.close()
        return answer

    async def _send(self, request, auth):
        """Write the request (connecting if need be) and read the answer's head."""
        lines = ["%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: meterkit\r\nContent-Length: %d\r\n"
                 % (request.method, request.path, self.host, len(request.body))]
        for name, value in request.headers:
            lines.append("%s: %s\r\n" % (name, value))
        if self.cookies:
            lines.append("Cookie: %s\r\n" % "; ".join(
                "%s=%s" % (k, self.cookies[k]) for k in self.cookies))
        if auth:
            lines.append("Authorization: %s\r\n" % auth)
        lines.append("\r\n")
        head = "".join(lines).encode()
        lines = None
        while True:
            fresh = self._stream is None
            if fresh:
                await self._open()
            try:
                writer = self._stream
                writer.write(head)
                if request.body:
                    writer.write(request.body)
                await _within(writer.drain(), self.timeout_ms)
                answer = await self._head(request.what)
            except asyncio.TimeoutError:
                self.close()
                raise GatewayError("timeout", self._timeout_message(request.what))
            except (OSError, ValueError) as e:   # ValueError: a TLS failure on MicroPython
                if fresh or self.refused:
                    raise self._lost(e, request.what)
                answer = None
            if answer is not None:
                return answer
            self.close()   # a kept-alive connection the gateway had closed: once more, anew
            if fresh:
                raise GatewayError("unreachable", "the gateway at %s closed the connection "
                                   "before it answered %s" % (self.where, request.what))

    async def _head(self, what):
        """(status, {header: value}) of the answer; None when the connection had ended."""
        if self._start == self._end and not await self._fill(False):
            return None
        line = await self._line(what)
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise self._broken("%s: not an HTTP answer (%r)" % (what, line[:40]))
        head = {"_close": parts[0] == "HTTP/1.0"}
        size = 0
        while True:
            line = await self._line(what)
            size += len(line)
            if not line:
                break
            if size > MAX_HEAD:
                raise self._broken("%s: the answer's header exceeds %d bytes" % (what, MAX_HEAD))
            name, _, value = line.partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "set-cookie":
                cookie, _, _ = value.partition(";")
                key, eq, kept = cookie.partition("=")
                if eq and key.strip():
                    self.cookies[key.strip()] = kept.strip()
                    head.setdefault("set-cookie", []).append(key.strip())
            else:
                head[name] = value
        if head.get("connection", "").lower() == "close":
            head["_close"] = True
        self.date = head.get("date") or self.date
        return int(parts[1]), head

    async def _body(self, head, answer):
        """The body into answer.feed (None: read and dropped), by its length, in chunks, or to
        the connection's end."""
        what = "the answer"
        if head.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = await self._line(what)
                size = size.split(";", 1)[0].strip()
                try:
                    size = int(size, 16)
                except ValueError:
                    raise self._broken("a broken chunked answer (%r)" % size[:20])
                if not size:
                    while await self._line(what):   # trailers
                        pass
                    break
                await self._copy(size, answer)
                await self._line(what)
        elif "content-length" in head:
            length = head["content-length"]
            if not length.isdigit():
                raise self._broken("a broken Content-Length (%r)" % length[:20])
            await self._copy(int(length), answer)
        else:
            await self._copy(-1, answer)
            head["_close"] = True
        if head["_close"]:
            self.close()

    async def _copy(self, size, answer):
        """size bytes (-1: to the end of the connection) from the stream to answer."""
        while size:
            if self._start == self._end and not await self._fill(size < 0):
                if size < 0:
                    return
                raise self._broken("the connection closed in the middle of an answer")
            n = self._end - self._start if size < 0 else min(size, self._end - self._start)
            if answer is not None:
                answer.feed(self._view[self._start:self._start + n])
            self._start += n
            if size > 0:
                size -= n

    async def _line(self, what):
        """One CRLF-ended line (without it) as text."""
        line = b""
        while True:
            at = self._buf.find(b"\n", self._start, self._end)
            if at >= 0:
                line += bytes(self._view[self._start:at])
                self._start = at + 1
                break
            line += bytes(self._view[self._start:self._end])
            self._start = self._end
            if len(line) > MAX_LINE:
                raise self._broken("%s: an answer line longer than %d bytes" % (what, MAX_LINE))
            if not await self._fill(False):
                raise self._broken("%s: the gateway closed the connection" % what)
        try:
            return line.decode().rstrip("\r")
        except ValueError:
            return "".join(chr(b) if b < 128 else "?" for b in line).rstrip("\r")

    async def _fill(self, to_end):
        """Read more into the buffer; False at the connection's end."""
        stream = self._stream
        while True:
            try:
                n = await _within(stream.readinto(self._buf), self.timeout_ms)
            except asyncio.TimeoutError:
                self.close()
                raise GatewayError("timeout", self._timeout_message("the answer"))
            except (OSError, ValueError) as e:
                if to_end:
                    return False
                raise self._lost(e, "the answer")
            if n is None:    # a TLS record still incomplete
                continue
            self._start, self._end = 0, n
            return n > 0

    def _broken(self, message):
        self.close()
        return GatewayError("http", "the gateway at %s sent %s" % (self.where, message)) \
            if message.startswith("a ") else GatewayError("http", message)

    def _timeout_message(self, what):
        return timeout_message(self.where, what, self.timeout_ms // 1000,
                               self.silent_on_bad_login)


def _reason(error):
    import errno
    code = getattr(error, "errno", None)
    if code is None and error.args and isinstance(error.args[0], int):
        code = error.args[0]
    name = errno.errorcode.get(code) if code else None
    return name or " ".join(str(error).split()) or type(error).__name__
