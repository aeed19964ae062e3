"""Static files from the web root on flash, streamed in chunks; `name.gz` (compressed at build
time, never on the device) is served instead of `name` to clients that accept gzip.

    response = serve(root, "/live", accepts_gzip)   # Response, or None when there is no such file

Only names made of letters, digits, '-', '_' and '.' (not leading) in at most one subfolder are
looked up, so no request can name a file outside the root, whatever the path decoding let by.
"""
import os

from .http import Response

PAGES = ("setup", "live", "status", "settings")
TYPES = (("html", "text/html; charset=utf-8"), ("js", "text/javascript; charset=utf-8"),
         ("css", "text/css; charset=utf-8"), ("svg", "image/svg+xml"), ("json", "application/json"),
         ("png", "image/png"), ("ico", "image/x-icon"), ("txt", "text/plain; charset=utf-8"))
SAFE = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."
CACHE = (("Cache-Control", "max-age=300"),)


def safe_name(path):
    """'/js/app.js' -> 'js/app.js'; None for anything else than plain names."""
    segments = path[1:].split("/")
    if not 1 <= len(segments) <= 2:
        return None
    for segment in segments:
        if not segment or segment[0] == "." or [c for c in segment if c not in SAFE]:
            return None
    return "/".join(segments)


def content_type(name):
    extension = name.rsplit(".", 1)[-1]
    for known, mime in TYPES:
        if extension == known:
            return mime
    return "application/octet-stream"


def _is_file(path):
    try:
        return os.stat(path)[0] & 0x4000 == 0    # not a directory
    except OSError:
        return False


def serve(root, path, accepts_gzip):
    name = safe_name(path)
    if name is None:
        return None
    if name in PAGES:
        name += ".html"
    full = root + "/" + name
    headers = CACHE
    if accepts_gzip and _is_file(full + ".gz") or not _is_file(full) and _is_file(full + ".gz"):
        full += ".gz"
        headers = CACHE + (("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding"))
    elif not _is_file(full):
        return None
    return Response(200, content_type=content_type(name), headers=headers, file=full)
