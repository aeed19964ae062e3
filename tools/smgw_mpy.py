"""One gateway polling cycle as the dongle would run it, on MicroPython: TLS through `tls` with the
certificate pinned by SHA-256, HTTP/1.1 on one kept-alive connection, digest auth with hashlib
(MD5 or SHA-256), the family's pages or JSON, exact values from the shared core. No float.

    micropython -X heapsize=64k tools/smgw_mpy.py FAMILY HOST PORT USER PASSWORD PIN_HEX [ID]
    (FAMILY: ppc, theben, emh; tls: the handshake alone; none: the imports alone; PIN_HEX "-":
    none pinned yet)

Prints "fingerprint <hex>", one "value <meter> <obis> <value> <unit> <time>" line per value,
then "heap_free <bytes>". tools/bench_smgw.py runs it against the simulated gateways of the tests
to find the smallest heap a cycle fits in; tests/test_smgw_micropython.py checks what it reads.
"""
import binascii
import gc
import hashlib
import json
import os
import socket
import sys

import tls

from meterkit.dlms.pushlists import unit_text
from meterkit.exact import Exact
from meterkit.obis import obis_text


def hexdigest(name, text):
    return binascii.hexlify(getattr(hashlib, name)(text).digest()).decode()


class Link:
    """One TLS connection with the pin checked, and HTTP/1.1 requests with digest auth."""

    def __init__(self, host, port, pin, user, password, force_md5):
        sock = socket.socket()
        sock.settimeout(10)
        sock.connect(socket.getaddrinfo(host, port)[0][-1])
        context = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
        # self-signed: no CA to verify against (CERT_OPTIONAL goes on without one); the callback
        # sees the gateway's certificate, and its pin is the check
        context.verify_mode = tls.CERT_OPTIONAL
        seen = []

        def check(cert, depth):
            if depth == 0:
                seen.append(hexdigest("sha256", cert))
            return 0   # no verify flags of our own: the pin decides below

        context.verify_callback = check
        self.tls = context.wrap_socket(sock, server_hostname=host)
        self.fingerprint = seen[0] if seen else None
        if pin and self.fingerprint != pin:
            self.tls.close()   # before any credential leaves
            raise OSError("certificate changed: pinned %s, now %s" % (pin, self.fingerprint))
        self.host, self.user, self.password, self.force_md5 = host, user, password, force_md5
        self.challenge, self.nc, self.cookie = None, 0, None

    def request(self, method, path, body=b"", headers=""):
        for _ in range(2):   # the first answer may be the digest challenge
            auth = self._authorization(method, path) if self.challenge else ""
            self._send(method, path, body, headers + auth)
            status, head, data = self._answer()
            if status != 401 or auth:
                return status, head, data
            self.challenge = _fields(head["www-authenticate"])
        return status, head, data

    def _send(self, method, path, body, headers):
        cookie = "Cookie: %s\r\n" % self.cookie if self.cookie else ""
        self.tls.write(("%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n%s%s\r\n" % (
            method, path, self.host, len(body), cookie, headers)).encode())
        if body:
            self.tls.write(body)

    def _answer(self):
        status = int(self.tls.readline().split()[1])
        head = {}
        while True:
            line = self.tls.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode().partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "set-cookie" and value.startswith("session="):
                self.cookie = value.split(";")[0]
            head[name] = value
        size, data = int(head.get("content-length", "0")), b""
        while len(data) < size:
            chunk = self.tls.read(size - len(data))
            if not chunk:
                raise OSError("connection closed mid-answer")
            data += chunk
        return status, head, data

    def _authorization(self, method, path):
        c = self.challenge
        algorithm = "MD5" if self.force_md5 else c.get("algorithm", "MD5")
        name = "md5" if algorithm == "MD5" else "sha256"
        self.nc += 1
        nc, cnonce = "%08x" % self.nc, binascii.hexlify(os.urandom(8)).decode()
        ha1 = hexdigest(name, "%s:%s:%s" % (self.user, c["realm"], self.password))
        ha2 = hexdigest(name, "%s:%s" % (method, path))
        response = hexdigest(name, ":".join((ha1, c["nonce"], nc, cnonce, "auth", ha2)))
        return ('Authorization: Digest username="%s", realm="%s", nonce="%s", uri="%s", '
                'response="%s", algorithm=%s, qop=auth, nc=%s, cnonce="%s", opaque="%s"\r\n' % (
                    self.user, c["realm"], c["nonce"], path, response, algorithm, nc, cnonce,
                    c.get("opaque", "")))

    def close(self):
        self.tls.close()


def _fields(header):
    fields, rest = {}, header[7:]
    while rest:
        key, _, rest = rest.strip().partition("=")
        if rest.startswith('"'):
            value, _, rest = rest[1:].partition('"')
        else:
            value, _, rest = rest.partition(",")
        fields[key.strip().lower()] = value.strip()
        rest = rest.lstrip(", ")
    return fields


def _ok(answer, what):
    status, _, data = answer
    if status != 200:
        raise OSError("%s: HTTP %d" % (what, status))
    return data


def hex_obis(text):
    return obis_text(binascii.unhexlify(text.split(".")[0]))


def out(meter, obis, value, unit, stamp):
    print("value", meter, obis, value, unit or "-", stamp)


# -- the families ---------------------------------------------------------------------------

def emh(link, args):
    root = "/json/metering/origin/"
    for meter in json.loads(_ok(link.request("GET", root), "meter list")):
        doc = json.loads(_ok(link.request("GET", root + meter + "/extended"), meter))
        for item in doc["values"]:
            value = Exact(int(item["value"]), item["scaler"])
            out(meter, hex_obis(item["logical_name"]), value, unit_text(item["unit"]),
                doc["capture_time"])
        doc = None
        gc.collect()


def theben(link, args):
    path = "/smgw/m2m/%s.sm/json" % (args[6] if len(args) > 6 else args[3])

    def call(request):
        body = json.dumps(request).encode()
        data = _ok(link.request("POST", path, body, "Content-Type: application/json\r\n"
                                 "X-Content-Length: %d\r\n" % len(body)), request["method"])
        return json.loads(data)[request["method"]]

    call({"method": "smgw-info"})
    points = [p["usage-point-id"] for p in call({"method": "user-info"})["usage-points"]
              if p["taf-state"] == "running"]
    for point in points:
        answer = call({"method": "readings", "database": "origin", "usage-point-id": point,
                       "last-reading": "true"})
        for channel in answer["channels"]:
            for entry in channel["readings"]:
                value = Exact(int(entry["value"]), channel.get("scaler", -1))
                out(point, hex_obis(channel["obis"]), value, channel.get("unit", ""),
                    entry["capture-time"])
        answer = None
        gc.collect()


def _attr(tag, name):
    for quote in "'\"":
        at = tag.find("%s=%s" % (name, quote))
        if at >= 0:
            at += len(name) + 2
            return tag[at:tag.index(quote, at)]
    return None


def _cells(page, key):
    """The texts of every element with id='<key>…', in page order: [(suffix, text)]."""
    found, at = [], 0
    while True:
        at = page.find("id='" + key, at)
        if at < 0:
            return found
        end = page.index("'", at + 4)
        start = page.index(">", end) + 1
        found.append((page[at + 4 + len(key):end], page[start:page.index("<", start)]))
        at = start


def ppc(link, args):
    path = "/cgi-bin/hanservice.cgi"
    token = [None]

    def post(fields):
        body = ("tkn=%s&%s" % (token[0], fields)).encode()
        page = _ok(link.request("POST", path, body, "Content-Type: "
                                 "application/x-www-form-urlencoded\r\n"), fields).decode()
        token[0] = _token(page) or token[0]
        return page

    token[0] = _token(_ok(link.request("GET", path), "login").decode())
    if token[0] is None:
        raise OSError("no session: another one is open")
    try:
        page = post("action=meterform")
        options, at = [], 0
        while True:
            at = page.find("<option", at)
            if at < 0:
                break
            end = page.index(">", at)
            text_end = page.index("<", end)
            options.append((_attr(page[at:end], "value"), page[end + 1:text_end].strip()))
            at = text_end
        page = None
        for mid, label in options:
            meter = label[:-3].split(".")[-1] if label.endswith(".sm") else label
            cells = _cells(post("action=showMeterProfile&mid=" + mid), "table_metervalues_col_")
            stamp, row = None, {}
            for key, text in cells + [("timestamp", "")]:
                if key == "timestamp" and "obis" in row:
                    out(meter, row["obis"], Exact.parse(row["wert"]), row.get("einheit"), stamp)
                    row = {}
                if key == "timestamp" and text:
                    stamp = text.replace(" ", "T")
                row[key] = text
            cells = None
            gc.collect()
    finally:
        post("action=logout")


def _token(page):
    at = page.find("name='tkn'")
    if at < 0:
        return None
    start = page.rfind("<input", 0, at)
    return _attr(page[start:page.index(">", at)], "value")


def tls_only(link, args):
    pass   # the handshake and the pin: what TLS alone costs


def main(args):
    family, host, port, user, password, pin = args[:6]
    gc.collect()
    if family == "none":   # the modules alone: the baseline of the bench
        print("heap_free", gc.mem_free())
        return
    before = gc.mem_alloc()
    link = Link(host, int(port), pin if pin != "-" else "", user, password, family == "theben")
    print("fingerprint", link.fingerprint)
    gc.collect()
    print("tls_session_bytes", gc.mem_alloc() - before)
    try:
        {"emh": emh, "theben": theben, "ppc": ppc, "tls": tls_only}[family](link, args)
    finally:
        link.close()
    gc.collect()
    print("heap_free", gc.mem_free())


if __name__ == "__main__":
    main(sys.argv[1:])
