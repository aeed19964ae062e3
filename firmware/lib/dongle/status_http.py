"""A tiny read-only HTTP server: GET /api/status -> JSON. The web UI issue builds on it.

Robust against whatever a LAN sends: the request head is read in bounded chunks with a deadline
(431 when it is too big, 408 when it is too slow), anything but `GET|HEAD <path> HTTP/1.x` is a
400, unknown paths 404, other methods 405. One connection at a time costs ~1 KB of heap.
"""
import asyncio

MAX_HEAD = 2048
READ_TIMEOUT_S = 5
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           408: "Request Timeout", 431: "Request Header Fields Too Large"}


async def serve(port, status_json, host="0.0.0.0"):
    """Start serving; status_json() returns the document (str). Returns the server."""
    async def handle(reader, writer):
        await _handle(reader, writer, status_json)
    return await asyncio.start_server(handle, host, port)


async def _read_head(reader):
    """The request head (bytes up to the blank line), or an error status."""
    head = b""
    while b"\r\n\r\n" not in head and b"\n\n" not in head:
        chunk = await reader.read(256)
        if not chunk:
            return None, 400
        head += chunk
        if len(head) > MAX_HEAD:
            return None, 431
    return head, 200


def parse_request(head):
    """(status, method, path) for a request head."""
    line = head.split(b"\n", 1)[0].rstrip(b"\r")
    parts = line.split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1.") or not parts[1].startswith(b"/"):
        return 400, None, None
    method, path = parts[0], parts[1].split(b"?", 1)[0]
    if method not in (b"GET", b"HEAD"):
        return 405, method, path
    return 200, method, path


async def _handle(reader, writer, status_json):
    try:
        try:
            head, status = await asyncio.wait_for(_read_head(reader), READ_TIMEOUT_S)
        except asyncio.TimeoutError:
            head, status = None, 408
        method = b"GET"
        if head is not None:
            status, method, path = parse_request(head)
        if status == 200 and path == b"/api/status":
            body = status_json().encode()
        elif status == 200 and path == b"/":
            body = b'{"status": "/api/status"}'
        else:
            status = 404 if status == 200 else status
            body = ('{"error": "%s"}' % REASONS[status]).encode()
        await _respond(writer, status, b"" if method == b"HEAD" else body, len(body))
    except OSError:
        pass   # the client went away
    finally:
        try:
            writer.close()
            await writer.wait_closed()
        except OSError:
            pass


async def _respond(writer, status, body, length):
    head = ("HTTP/1.0 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
            "Cache-Control: no-store\r\nConnection: close\r\n\r\n" % (status, REASONS[status], length))
    writer.write(head.encode() + body)
    await writer.drain()
