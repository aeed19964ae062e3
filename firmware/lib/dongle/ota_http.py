"""HTTP GET for OTA downloads (HTTP/1.0, Content-Length), streamed in CHUNK-byte pieces.

    server = split_url("http://host:8080/release/")   # (host, port, https, path prefix)
    n = await get(server, "files/lib/x.mpy", sink, limit)   # None: 404; Rejected(why) otherwise
"""
import asyncio

CHUNK = 1024
TIMEOUT_S = 10


class Rejected(Exception):
    """An update that was not applied; the message says why, for a person. Nothing changed."""


def split_url(url):
    """(host, port, https, path prefix ending in /)."""
    scheme, _, rest = url.partition("://")
    if scheme not in ("http", "https") or not rest:
        raise Rejected("the release URL must start with http:// or https:// (got %r)" % url)
    where, _, path = rest.partition("/")
    host, _, port = where.partition(":")
    try:
        port = int(port) if port else (443 if scheme == "https" else 80)
    except ValueError:
        raise Rejected("bad port in the release URL %r" % url)
    path = "/" + path
    return host, port, scheme == "https", path if path.endswith("/") else path + "/"


async def get(server, path, sink, limit):
    """GET path; feed the body to sink(chunk) piece by piece; return its length.
    None: 404. Rejected: unreachable, another status, longer than limit, or cut short."""
    host, port, https, prefix = server
    try:
        if https:
            opening = asyncio.open_connection(host, port, ssl=True)
        else:
            opening = asyncio.open_connection(host, port)
        reader, writer = await asyncio.wait_for(opening, TIMEOUT_S)
    except (OSError, asyncio.TimeoutError) as e:
        raise Rejected("cannot reach the release server %s:%d (%s)" % (host, port, e))
    try:
        writer.write(("GET %s%s HTTP/1.0\r\nHost: %s\r\nUser-Agent: meterkit\r\n\r\n"
                      % (prefix, path, host)).encode())
        await writer.drain()
        return await _response(reader, path, sink, limit)
    except (OSError, asyncio.TimeoutError) as e:
        raise Rejected("download of %s failed: %s" % (path, e or type(e).__name__))
    finally:
        writer.close()


async def _response(reader, path, sink, limit):
    status = (await asyncio.wait_for(reader.readline(), TIMEOUT_S)).split(None, 2)
    length = None
    while True:
        line = await asyncio.wait_for(reader.readline(), TIMEOUT_S)
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    code = status[1] if len(status) > 1 else b"?"
    if code == b"404":
        return None
    if code != b"200":
        raise Rejected("the release server answered %s for %s" % (code.decode(), path))
    if length is not None and length > limit:
        raise Rejected("%s is %d bytes, more than the %d expected" % (path, length, limit))
    got = 0
    while length is None or got < length:
        chunk = await asyncio.wait_for(reader.read(CHUNK), TIMEOUT_S)
        if not chunk:
            break
        got += len(chunk)
        if got > limit:
            raise Rejected("%s is longer than the %d bytes expected" % (path, limit))
        sink(chunk)
    if length is not None and got < length:
        raise Rejected("truncated download: %s: %d of %d bytes" % (path, got, length))
    return got


async def get_bytes(server, path, limit):
    parts = []
    if await get(server, path, parts.append, limit) is None:
        return None
    return b"".join(parts)
