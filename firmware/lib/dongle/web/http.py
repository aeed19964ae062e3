"""A small asyncio HTTP/1.1 server for the dongle: one request per connection, bounded in every way.

    server = Server(handle)            # async handle(request) -> Response
    await server.start("0.0.0.0", 80)
    server.close()

Whatever a network sends gets a 4xx or the connection dropped, never unbounded heap:
request line > MAX_LINE -> 414, head > MAX_HEAD -> 431, body > max_body -> 413, no
Content-Length on a body -> 411, a client slower than timeout_s -> 408 and closed, more than
max_connections at once -> 503. Only one request body is held in RAM at a time.
"""
import asyncio

MAX_LINE = 512
MAX_HEAD = 2048
MAX_BODY = 16384          # a backup with a CA certificate fits
MAX_CONNECTIONS = 4
TIMEOUT_S = 5
CHUNK = 512
METHODS = (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH")
KEPT_HEADERS = (b"cookie", b"authorization", b"content-length", b"content-type",
                b"accept-encoding", b"transfer-encoding")
REASONS = {200: "OK", 204: "No Content", 302: "Found", 400: "Bad Request", 401: "Unauthorized",
           403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
           411: "Length Required", 413: "Content Too Large", 414: "URI Too Long",
           431: "Request Header Fields Too Large", 500: "Internal Server Error",
           501: "Not Implemented", 503: "Service Unavailable"}


class HttpError(Exception):
    def __init__(self, status, message=None):
        super().__init__(message or REASONS.get(status, "error"))
        self.status = status
        self.message = message or REASONS.get(status, "error")


class Request:
    def __init__(self, method, path, query, headers):
        self.method, self.path, self.query, self.headers = method, path, query, headers
        self.body = b""

    def header(self, name, default=""):
        return self.headers.get(name, default)

    def param(self, name, default=None):
        for pair in self.query.split("&"):
            key, _, value = pair.partition("=")
            if key == name:
                return unquote(value.replace("+", " "))
        return default

    def data(self):
        """The body as a dict: JSON, or a urlencoded form. HttpError(400) says what is wrong."""
        if self.header("content-type").startswith("application/x-www-form-urlencoded"):
            return parse_form(self.body)
        import json
        try:
            doc = json.loads(self.body.decode())
        except (ValueError, UnicodeError) as e:   # UnicodeError: bytes that are not UTF-8
            raise HttpError(400, "the body is not valid JSON (%s)" % (e.args[0] if e.args else e))
        if not isinstance(doc, dict):
            raise HttpError(400, "the body must be a JSON object")
        return doc


class Response:
    """A body in RAM (bytes), or a file streamed in chunks (file=path)."""

    def __init__(self, status=200, body=b"", content_type="application/json", headers=(),
                 file=None):
        self.status, self.body, self.content_type = status, body, content_type
        self.headers, self.file = headers, file


def json_response(doc, status=200, headers=()):
    import json
    return Response(status, json.dumps(doc).encode(), headers=headers)


def error_response(status, message=None):
    return json_response({"error": message or REASONS.get(status, "error")}, status)


def redirect(location):
    return Response(302, b"", "text/plain", (("Location", location),))


# -- parsing (pure functions: tested on CPython and MicroPython) ---------------------------------

def unquote(text):
    """Percent-decoding that refuses broken escapes and bytes that are not UTF-8."""
    if "%" not in text:
        return text
    parts = text.split("%")
    out = bytearray(parts[0].encode())
    for part in parts[1:]:
        try:
            out.append(int(part[:2], 16))
        except ValueError:
            raise HttpError(400, "bad percent-escape in %r" % text[:40])
        if len(part) < 2:
            raise HttpError(400, "bad percent-escape in %r" % text[:40])
        out.extend(part[2:].encode())
    try:
        return bytes(out).decode()
    except UnicodeError:
        raise HttpError(400, "the URL is not UTF-8")


def parse_form(body):
    """a=1&b=x+y -> {"a": "1", "b": "x y"}."""
    try:
        text = body.decode()
    except UnicodeError:
        raise HttpError(400, "the form data is not UTF-8")
    form = {}
    for pair in text.split("&"):
        if pair:
            key, eq, value = pair.partition("=")
            if not eq:
                raise HttpError(400, "form field %r has no value" % key[:40])
            form[unquote(key.replace("+", " "))] = unquote(value.replace("+", " "))
    return form


def clean_path(raw):
    """The decoded path, or HttpError(400) for anything that could climb out of the web root."""
    path = unquote(raw)
    if not path.startswith("/") or "\\" in path or "\x00" in path or "//" in path:
        raise HttpError(400, "bad path")
    for segment in path.split("/")[1:]:
        if segment in (".", ".."):
            raise HttpError(400, "bad path")
    return path


def parse_head(head):
    """Request head bytes (without the blank line) -> Request. Raises HttpError."""
    lines = head.split(b"\n")
    parts = lines[0].rstrip(b"\r").split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        raise HttpError(400, "not an HTTP/1.x request line")
    method, target = parts[0], parts[1]
    if method not in METHODS:
        raise HttpError(405 if method.isalpha() and method.isupper() else 400)
    if not target.startswith(b"/"):
        raise HttpError(400, "only origin-form targets (/path) are served")
    try:
        target = target.decode()
    except UnicodeError:
        raise HttpError(400, "the URL is not UTF-8")
    raw_path, _, query = target.partition("?")
    headers = {}
    for line in lines[1:]:
        name, colon, value = line.rstrip(b"\r").partition(b":")
        if not colon or not name or name != name.strip():
            raise HttpError(400, "malformed header line")
        name = name.lower()
        if name in KEPT_HEADERS:
            try:
                headers[name.decode()] = value.strip().decode()
            except UnicodeError:
                raise HttpError(400, "header %s is not UTF-8" % name.decode())
    return Request(method.decode(), clean_path(raw_path), query, headers)


def body_length(request, max_body):
    if request.header("transfer-encoding"):
        raise HttpError(411, "chunked bodies are not accepted: send Content-Length")
    text = request.header("content-length", "0")
    if not text.isdigit() or len(text) > 9:
        raise HttpError(400 if text else 411, "bad Content-Length")
    length = int(text)
    if length > max_body:
        raise HttpError(413, "the body is larger than %d bytes" % max_body)
    return length


# -- the server ----------------------------------------------------------------------------------

class Server:
    def __init__(self, handle, max_connections=MAX_CONNECTIONS, timeout_s=TIMEOUT_S,
                 max_body=MAX_BODY):
        self.handle = handle
        self.max_connections, self.timeout_s, self.max_body = max_connections, timeout_s, max_body
        self.active = 0
        self.counts = {"requests": 0, "refused": 0, "timeouts": 0, "errors": 0}
        self._body_lock = asyncio.Lock()
        self._server = None

    async def start(self, host, port):
        self._server = await asyncio.start_server(self.connection, host, port)
        return self

    def close(self):
        if self._server is not None:
            self._server.close()
            self._server = None

    async def connection(self, reader, writer):
        """Serve one accepted connection (start() does it for each; a listener may too)."""
        if self.active >= self.max_connections:
            self.counts["refused"] += 1
            await self._finish(writer, error_response(503, "busy, try again"), True)
            return
        self.active += 1
        try:
            response, head_only = await self._serve(reader)
            await self._finish(writer, response, head_only)
        finally:
            self.active -= 1

    async def _serve(self, reader):
        try:
            request = await asyncio.wait_for(self._read(reader), self.timeout_s)
        except asyncio.TimeoutError:
            self.counts["timeouts"] += 1
            return error_response(408, "too slow"), False
        except HttpError as e:
            self.counts["errors"] += 1
            return error_response(e.status, e.message), False
        except OSError:
            return None, False
        self.counts["requests"] += 1
        try:
            return await self.handle(request), request.method == "HEAD"
        except HttpError as e:
            return error_response(e.status, e.message), request.method == "HEAD"
        except MemoryError:      # the heap was short just now: not a bug, worth a retry
            self.counts["errors"] += 1
            return error_response(503, "out of memory, try again"), False
        except Exception as e:   # a bug in a route must not take the dongle down
            self.counts["errors"] += 1
            return error_response(500, "internal error: %r" % (e,)), False

    async def _read(self, reader):
        head = bytearray()
        while True:
            end = head.find(b"\r\n\r\n")
            if end >= 0:
                rest = head[end + 4:]
                break
            end = head.find(b"\n\n")
            if end >= 0:
                rest = head[end + 2:]
                break
            if len(head) > MAX_HEAD:
                raise HttpError(414 if head.find(b"\n") < 0 else 431)
            if head.find(b"\n") < 0 and len(head) > MAX_LINE:
                raise HttpError(414)
            chunk = await reader.read(CHUNK)
            if not chunk:
                raise OSError("closed")
            head.extend(chunk)
        if head.find(b"\n") > MAX_LINE:
            raise HttpError(414)
        if end > MAX_HEAD:
            raise HttpError(431)
        request = parse_head(bytes(head[:end]))
        length = body_length(request, self.max_body)
        if length:
            async with self._body_lock:   # one body in RAM at a time
                request.body = await _read_exactly(reader, bytes(rest[:length]), length)
        return request

    async def _finish(self, writer, response, head_only):
        try:
            if response is not None:
                await asyncio.wait_for(_write(writer, response, head_only), self.timeout_s * 2)
        except (OSError, asyncio.TimeoutError):
            pass   # the client went away or stopped reading
        finally:
            try:
                writer.close()
                await writer.wait_closed()
            except OSError:
                pass


async def _read_exactly(reader, start, length):
    body = bytearray(start)
    while len(body) < length:
        chunk = await reader.read(min(CHUNK, length - len(body)))
        if not chunk:
            raise HttpError(400, "the body ended early")
        body.extend(chunk)
    return bytes(body)


async def _write(writer, response, head_only):
    size, stream = len(response.body), None
    if response.file is not None:
        import os
        stream = open(response.file, "rb")
        size = os.stat(response.file)[6]
    try:
        lines = ["HTTP/1.1 %d %s" % (response.status, REASONS.get(response.status, "")),
                 "Content-Type: " + response.content_type, "Content-Length: %d" % size,
                 "Connection: close", "X-Content-Type-Options: nosniff"]
        for name, value in response.headers:
            lines.append(name + ": " + value)
        if not any(name == "Cache-Control" for name, _ in response.headers):
            lines.append("Cache-Control: no-store")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        if not head_only:
            if stream is None:
                writer.write(response.body)
            else:
                await _stream(writer, stream)
        await writer.drain()
    finally:
        if stream is not None:
            stream.close()


async def _stream(writer, stream):
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    while True:
        n = stream.readinto(buf)
        if not n:
            return
        writer.write(bytes(view[:n]))
        await writer.drain()
