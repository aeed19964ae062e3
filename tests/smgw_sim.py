"""Simulated Smart Meter Gateways for the tests: a local HTTPS server on 127.0.0.1 with a
self-signed certificate made here (cryptography), digest auth checked the RFC 7616 way, and each
family's pages or JSON as the open clients read them (see the README's sources), with several
meters whose readings advance by 15 minutes per `advance()`.

    with Gateway(tmp_path, "ppc") as gw:      # "ppc" | "theben" | "emh"
        gw.url, gw.user, gw.password, gw.fingerprint
        gw.mode = "error500" | "hang" | "second_session" | "no_cookie" | "many_cookies"
                  | "malformed"
        gw.chunked, gw.close_each = True, True   (how the answers are framed; default False)
        gw.advance(); gw.new_certificate(); gw.logins (epochs of login attempts); gw.hits

Bad days the gateway can have: answering 500, hanging (until the test ends or 30 s), a foreign
session holding the PPC login, no or several session cookies, malformed pages. A wrong password
is the client's to give; Theben's firmware bug is simulated too: its challenge names SHA-256,
but only an MD5 answer is accepted.
"""
import datetime
import hashlib
import html
import json
import secrets
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote
from zoneinfo import ZoneInfo

from broker import free_port

T0 = 1778882400   # 2026-05-15T22:00:00Z: 00:00 in Berlin (CEST)
STEP_S = 900
BERLIN = ZoneInfo("Europe/Berlin")   # the gateways' local time

# Meters: id, [(OBIS, unit, start value text, increase per step text)]
METERS = {
    "ppc": [("1lgz0072999211", [("1-0:1.8.0", "kWh", "123456.7891", "0.2503"),
                                ("1-0:2.8.0", "kWh", "4321.0987", "0.0125")]),
            ("1lgz0088888888", [("1-0:1.8.0", "kWh", "777.0001", "0.0100")]),
            ("7elster000123", [("7-0:3.0.0", "m3", "1234.567", "0.011")])],
    "theben": [("UP-1EBZ0100123456", [("1-0:1.8.0", "Wh", "98765432", "2501"),
                                      ("1-0:2.8.0", "Wh", "1000000", "7")]),
               ("UP-7ITF0000004321", [("7-0:3.0.0", "m3", "4321987", "13")])],
    "emh": [("1EMH0012345678", [("1-0:1.8.0", "Wh", "123456789", "2500"),
                                ("1-0:2.8.0", "Wh", "987654", "10"),
                                ("1-0:16.7.0", "W", "1500", "1")]),
            ("8KAM0000000042", [("8-0:1.0.0", "m3", "45678", "3")])],
}
# the exponent of the last digit in Theben/EMH values (value = mantissa * 10**scaler)
SCALERS = {("theben", "m3"): -3, ("emh", "Wh"): -1, ("emh", "W"): 0, ("emh", "m3"): -3}
DLMS_UNITS = {"W": 27, "Wh": 30, "m3": 13}
FIRMWARE = {"ppc": "33918-34868", "theben": "3.0.12-abcdef01", "emh": None}
REALMS = {"ppc": "SMGW-HAN", "theben": "Conexa", "emh": "CASA"}
CHALLENGE = {"ppc": "MD5", "theben": "SHA-256", "emh": "SHA-256"}


def make_certificate(directory, stem):
    """A self-signed ECDSA P-256 certificate for 127.0.0.1, as a gateway has: (cert, key) paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "smgw-" + stem)])
    start = datetime.datetime(2024, 1, 1)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=36500))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / (stem + "-cert.pem"), directory / (stem + "-key.pem")
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    der = cert.public_bytes(serialization.Encoding.DER)
    digest = hashlib.sha256(der).hexdigest().upper()
    return cert_path, key_path, ":".join(digest[i:i + 2] for i in range(0, 64, 2))


def _hash(algorithm, text):
    return hashlib.new("md5" if algorithm == "MD5" else "sha256", text.encode()).hexdigest()


def _digest_fields(header):
    """'Digest a="b", c=d' -> {a: b, c: d}, by the standard library's parser (not the reader's:
    the simulator checks the dongle's and the host's digest independently)."""
    from urllib.request import parse_http_list, parse_keqv_list
    return dict((k.lower(), v) for k, v in
                parse_keqv_list(parse_http_list(header[len("Digest "):])).items())


def exact_add(start, step, count):
    """start + step * count on decimal text, exactly (the meter's own digits)."""
    places = max(len(start.partition(".")[2]), len(step.partition(".")[2]))
    scale = 10 ** places

    def units(text):
        whole, _, frac = text.partition(".")
        return int(whole) * scale + int((frac + "0" * places)[:places] or 0)

    total = units(start) + units(step) * count
    if not places:
        return str(total)
    return "%d.%0*d" % (total // scale, places, total % scale)


class Gateway:
    def __init__(self, directory, family, user="han-user", password="s3cret pass",
                 client_ca=None, session_timeout_s=60):
        self.directory, self.family = directory, family
        self.user, self.password = user, password
        self.client_ca = client_ca
        self.session_timeout_s = session_timeout_s
        self.port = free_port()
        self.url = "https://127.0.0.1:%d" % self.port
        self.mode = "ok"
        self.step = 0
        self.logins = []             # epochs of every login attempt (authorized or not)
        self.requests = []           # (method, path, action or method name)
        self.hits = 0                # HTTP requests received, whatever they were
        self.chunked = False         # answers in Transfer-Encoding: chunked, 100 bytes a chunk
        self.close_each = False      # Connection: close after every answer
        self.nonces = set()
        self.session = None          # PPC: {"id", "token", "since", "foreign"}
        self.unhang = threading.Event()
        self.lock = threading.Lock()
        self.server = None
        self.cert_count = 0
        self.new_certificate(restart=False)

    # -- lifecycle ------------------------------------------------------------------------------

    def new_certificate(self, restart=True):
        self.cert_count += 1
        self.cert, self.key, self.fingerprint = make_certificate(
            self.directory, "%s-%d" % (self.family, self.cert_count))
        if restart:
            self.stop()
            self.start()

    def start(self):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        if self.client_ca:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(self.client_ca)
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.gateway, server.context = self, context
        self.server = server
        self.unhang.clear()
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                         daemon=True).start()
        return self

    def stop(self):
        if self.server is not None:
            self.unhang.set()
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def advance(self, steps=1):
        with self.lock:
            self.step += steps

    # -- the meters ------------------------------------------------------------------------------

    def now(self):
        return T0 + self.step * STEP_S

    def values_at(self, epoch):
        """[(meter id, [(obis, unit, value text)])] at a capture time (a multiple of 15 min)."""
        count = (epoch - T0) // STEP_S
        return [(meter, [(obis, unit, exact_add(start, step, count))
                         for obis, unit, start, step in registers])
                for meter, registers in METERS[self.family]]

    # -- digest auth -----------------------------------------------------------------------------

    def challenge(self, stale=False):
        nonce = secrets.token_hex(16)
        self.nonces.add(nonce)
        return ('Digest realm="%s", qop="auth", nonce="%s", opaque="%s", algorithm=%s%s' % (
            REALMS[self.family], nonce, secrets.token_hex(8), CHALLENGE[self.family],
            ", stale=true" if stale else ""))

    def authorized(self, method, header):
        if not header or not header.startswith("Digest "):
            return False
        f = _digest_fields(header)
        algorithm = f.get("algorithm", "MD5")
        if self.family == "theben" and algorithm != "MD5":
            return False   # the firmware bug: it offers SHA-256 but checks MD5 only
        if f.get("nonce") not in self.nonces or f.get("username") != self.user \
                or f.get("realm") != REALMS[self.family]:
            return False
        ha1 = _hash(algorithm, "%s:%s:%s" % (self.user, f["realm"], self.password))
        ha2 = _hash(algorithm, "%s:%s" % (method, f.get("uri", "")))
        expected = _hash(algorithm, ":".join((ha1, f["nonce"], f.get("nc", ""),
                                               f.get("cnonce", ""), f.get("qop", ""), ha2)))
        return secrets.compare_digest(expected, f.get("response", ""))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass   # a client that failed the handshake or went away: the client's test says so

    def get_request(self):
        sock, address = self.socket.accept()
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), \
            address


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        self.request.settimeout(10)
        try:
            self.request.do_handshake()
        except (ssl.SSLError, OSError):
            self.request.close()
            raise
        BaseHTTPRequestHandler.setup(self)

    def handle(self):
        try:
            BaseHTTPRequestHandler.handle(self)
        except (ssl.SSLError, OSError):
            pass   # the client went away (a timeout, a closed session)

    def log_message(self, *args):
        pass

    def do_GET(self):
        self._serve("GET")

    def do_POST(self):
        self._serve("POST")

    def _serve(self, method):
        gw = self.server.gateway
        gw.hits += 1
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if gw.mode == "hang":
            gw.unhang.wait(30)
            self.close_connection = True
            return
        family = FAMILY_PAGES[gw.family]
        if not family.knows(gw, method, self.path):
            return self._send(404, b"not found", "text/plain")
        auth = self.headers.get("Authorization")
        if auth and family.starts_cycle(gw, method, self.path, body):
            with gw.lock:
                gw.logins.append(time.time())
        if not gw.authorized(method, auth):
            return self._send(401, b"<html>401 Unauthorized</html>", "text/html",
                              [("WWW-Authenticate", gw.challenge())])
        if gw.mode == "error500":
            return self._send(500, b"<html>500 Internal Server Error</html>", "text/html")
        with gw.lock:
            status, payload, kind, headers = family.answer(gw, self, method, body)
        self._send(status, payload, kind, headers)

    def _send(self, status, payload, kind, headers=()):
        gw = self.server.gateway
        self.send_response(status)
        self.send_header("Content-Type", kind)
        if gw.chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(len(payload)))
        if gw.close_each:
            self.send_header("Connection", "close")
            self.close_connection = True
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if gw.chunked:
            for at in range(0, len(payload), 100):
                piece = payload[at:at + 100]
                self.wfile.write(b"%x;x=1\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\nX-Trailer: 1\r\n\r\n")
        else:
            self.wfile.write(payload)


# -- PPC: hanservice.cgi -----------------------------------------------------------------------

class PpcPages:
    PATH = "/cgi-bin/hanservice.cgi"

    @classmethod
    def knows(cls, gw, method, path):
        return path == cls.PATH

    @staticmethod
    def starts_cycle(gw, method, path, body):
        return method == "GET"

    @classmethod
    def answer(cls, gw, handler, method, body):
        if gw.session and time.time() - gw.session["since"] > gw.session_timeout_s:
            gw.session = None
        if method == "GET":
            return cls.login(gw)
        form = dict((k, v[0]) for k, v in parse_qs(body.decode(), keep_blank_values=True).items())
        gw.requests.append(("POST", cls.PATH, form.get("action")))
        session = gw.session
        cookie = _cookie(handler.headers.get("Cookie", ""), "session")
        if session is None or session.get("foreign") or form.get("tkn") != session["token"] \
                or (cookie != session["id"] and gw.mode != "no_cookie"):
            return 200, _page("<h1>Sitzung abgelaufen</h1><p>Bitte melden Sie sich neu an.</p>"), \
                "text/html", []
        action = form.get("action")
        if action == "logout":
            gw.session = None
            return 200, _page("<p>Sie wurden abgemeldet.</p>"), "text/html", []
        content = {"meterform": cls.meterform, "showMeterProfile": cls.profile,
                   "showMeterValuesForm": cls.values_form, "showMeterValues": cls.values,
                   "swversions": cls.swversions}.get(action)
        if content is None:
            return 200, _page("<p>Unbekannte Aktion</p>", session["token"]), "text/html", []
        if gw.mode == "malformed" and action == "showMeterProfile":   # (no new token in it)
            return 200, b"<html><body><table id='metervalue'><tr><td id='table_metervalues_col_" \
                b"timestamp'>2026-05-16 00:15:00<td id='table_metervalues_col_obis'>1-0:1.8.0" \
                b"<td id='table_metervalues_col_wert'>12,3,4</td>", "text/html", []
        session["token"] = secrets.token_hex(8)   # every page with a form carries a new one
        return 200, _page(content(gw, form), session["token"]), "text/html", []

    @staticmethod
    def login(gw):
        gw.requests.append(("GET", PpcPages.PATH, "login"))
        if gw.mode == "second_session":
            gw.session = {"id": "other", "token": "other", "since": time.time(), "foreign": True}
        if gw.session is not None:   # one session at a time: refused, no token, no cookie
            return 200, _page("<h1>Anmeldung nicht m&ouml;glich</h1><p>Es ist bereits ein Benutzer "
                              "angemeldet.</p>"), "text/html", []
        gw.session = {"id": secrets.token_hex(12), "token": secrets.token_hex(8),
                      "since": time.time()}
        headers = []
        if gw.mode != "no_cookie":
            headers.append(("Set-Cookie", "session=%s; secure; HttpOnly" % gw.session["id"]))
        if gw.mode == "many_cookies":
            headers.append(("Set-Cookie", "lang=de; secure"))
        return 200, _page("<h1 id='headline_willkommen'>Willkommen</h1>", gw.session["token"]), \
            "text/html", headers

    @staticmethod
    def meterform(gw, form):
        options = "".join("<option value='mid-%d'>01005e318002.%s.sm</option>" % (i, meter)
                          for i, (meter, _) in enumerate(METERS["ppc"]))
        return ("<form name='meterform'><select name='mid' id='meterform_select_meter' size=1>"
                "%s</select></form>" % options)

    @staticmethod
    def _rows(gw, epochs, meter_index):
        """table#metervalue rows, newest first; the rows after a time's first leave it empty."""
        rows, line = [], 0
        for epoch in sorted(epochs, reverse=True):
            registers = gw.values_at(epoch)[meter_index][1]
            stamp = datetime.datetime.fromtimestamp(epoch, BERLIN).strftime("%Y-%m-%d %H:%M:%S")
            for n, (obis, unit, value) in enumerate(registers):
                line += 1
                cells = [("timestamp", stamp if n == 0 else ""), ("obis", obis),
                         ("wert", value), ("einheit", unit),
                         ("status", "gueltig" if n == 0 else ""),
                         ("istvalide", "1" if n == 0 else "")]
                rows.append("<tr id='table_metervalues_line%d'>%s</tr>" % (line, "".join(
                    "<td id='table_metervalues_col_%s'>%s</td>" % (k, html.escape(v))
                    for k, v in cells)))
        return ("<table id='metervalue'><tr id='table_metervalues_header'><th>Zeitstempel</th>"
                "<th>OBIS</th><th>Wert</th><th>Einheit</th><th>Status</th><th>valide</th></tr>"
                "%s</table>" % "".join(rows))

    @classmethod
    def _meter_index(cls, mid):
        return int(mid.rsplit("-", 1)[-1])

    @classmethod
    def profile(cls, gw, form):
        return cls._rows(gw, [gw.now() - STEP_S, gw.now()], cls._meter_index(form["mid"]))

    @staticmethod
    def values_form(gw, form):
        return ("<form name='input_metervalues'><input type='hidden' name='mid' value='values-%s'>"
                "</form>" % form["mid"])

    @classmethod
    def values(cls, gw, form):
        start = _berlin_epoch(form["from"])
        end = _berlin_epoch(form["to"])
        first = start + (-start % STEP_S)
        return cls._rows(gw, range(first, end + 1, STEP_S),
                         cls._meter_index(form["mid"].replace("values-", "")))

    @staticmethod
    def swversions(gw, form):
        return ("<table width=100%><tr><th>Komponente</th><th>Version</th><th>Pr&uuml;fsumme</th>"
                "</tr><tr><td>smgw-bootstream</td><td>33918</td><td>3044022007f60e61</td></tr>"
                "<tr><td>smgw-services</td><td>34868</td><td>304402201df9b452</td></tr></table>")


def _page(content, token=None):
    token_input = "<input type='hidden' name='tkn' value='%s'>" % token if token else ""
    return ("<html><head><title>Smart Meter Gateway</title></head><body><form method='post'>%s"
            "</form>%s<p id='div_fwversion'>%s</p></body></html>" % (
                token_input, content, FIRMWARE["ppc"])).encode()


def _cookie(header, name):
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def _berlin_epoch(text):
    moment = datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=BERLIN)
    return int(moment.timestamp())


# -- Theben CONEXA: /smgw/m2m/<id>.sm/json ------------------------------------------------------

class ThebenPages:
    @staticmethod
    def knows(gw, method, path):
        return method == "POST" and path == "/smgw/m2m/%s.sm/json" % unquote(gw.user)

    @staticmethod
    def starts_cycle(gw, method, path, body):
        return b'"smgw-info"' in body

    @staticmethod
    def answer(gw, handler, method, body):
        if handler.headers.get("X-Content-Length") != str(len(body)):
            return 400, b"", "text/plain", []   # the firmware wants its own length header
        try:
            request = json.loads(body)
        except ValueError:
            return 400, b"", "text/plain", []
        name = request.get("method")
        gw.requests.append(("POST", handler.path, name))
        if gw.mode == "malformed":
            return 200, b'{"readings": {"channels": [{"obis": "0100010800ff", "readi', \
                "application/json", []
        if name == "smgw-info":
            doc = {"smgw-info": {"smgw-id": "ETHE0012345678", "firmware-info": {
                "version": "3.0.12", "hash": "abcdef0123456789abcdef0123456789"}}}
        elif name == "user-info":
            points = [{"usage-point-id": meter, "taf-state": "running", "taf-number": "7"}
                      for meter, _ in METERS["theben"]]
            points.append({"usage-point-id": "UP-OLD", "taf-state": "stopped", "taf-number": "7"})
            doc = {"user-info": {"user-id": gw.user, "usage-points": points}}
        elif name == "readings":
            doc = {"readings": {"channels": ThebenPages.channels(gw, request["usage-point-id"])}}
        else:
            return 400, b"", "text/plain", []
        return 200, json.dumps(doc).encode(), "application/json", []

    @staticmethod
    def channels(gw, point):
        stamp = datetime.datetime.fromtimestamp(gw.now(), datetime.timezone.utc)
        for meter, registers in gw.values_at(gw.now()):
            if meter != point:
                continue
            channels = []
            for obis, unit, value in registers:
                channel = {"obis": _hex(obis),
                           "readings": [{"value": value, "capture-time":
                                         stamp.strftime("%Y-%m-%dT%H:%M:%SZ")}]}
                if unit != "Wh":   # energy channels state no unit: tenths of Wh by default
                    channel.update(unit=unit, scaler=SCALERS[("theben", unit)])
                channels.append(channel)
            return channels
        return []


def _hex(obis):
    ab, cde = obis.split(":")
    groups = [int(g) for g in ab.split("-") + cde.split(".")] + [255]
    return bytes(groups).hex()


# -- EMH CASA: /json/metering/origin/ -----------------------------------------------------------

class EmhPages:
    ROOT = "/json/metering/origin/"

    @classmethod
    def knows(cls, gw, method, path):
        return method == "GET" and path.startswith(cls.ROOT)

    @classmethod
    def starts_cycle(cls, gw, method, path, body):
        return path == cls.ROOT

    @classmethod
    def answer(cls, gw, handler, method, body):
        path = handler.path
        gw.requests.append(("GET", path, None))
        if gw.mode == "malformed":
            return 200, b"[\"1EMH0012345678\", ", "application/json", []
        if path == cls.ROOT:
            return 200, json.dumps([m for m, _ in METERS["emh"]]).encode(), "application/json", []
        meter = unquote(path[len(cls.ROOT):].split("/")[0])
        for name, registers in gw.values_at(gw.now()):
            if name == meter and path.endswith("/extended"):
                stamp = datetime.datetime.fromtimestamp(gw.now(), BERLIN).isoformat()
                values = [{"logical_name": "%s.%s.sm" % (_hex(obis), meter), "value": value,
                           "scaler": SCALERS[("emh", unit)], "unit": DLMS_UNITS[unit],
                           "signature": "-"} for obis, unit, value in registers]
                doc = {"capture_time": stamp, "timestamp": stamp, "status": "a0000000000000",
                       "values": values}
                return 200, json.dumps(doc).encode(), "application/json", []
        return 404, b"[]", "application/json", []


FAMILY_PAGES = {"ppc": PpcPages, "theben": ThebenPages, "emh": EmhPages}


def expected(family, epoch):
    """What a reader must find at a capture time: {meter id: {obis: (value text, unit)}} in the
    family's own digits and units (Theben/EMH mantissas with their scaler applied)."""
    out = {}
    gw = Gateway.__new__(Gateway)
    gw.family = family
    for meter, registers in Gateway.values_at(gw, epoch):
        out[meter] = {}
        for obis, unit, value in registers:
            if family == "theben" and unit == "Wh":
                value = _scale(value, -1)
            elif family != "ppc":
                value = _scale(value, SCALERS[(family, unit)])
            out[meter][obis] = (value, unit)
    return out


def _scale(mantissa, scaler):
    from meterkit.exact import Exact
    return str(Exact(int(mantissa), scaler))


def wait_until(predicate, timeout=30, what="the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out after %d s waiting for %s" % (timeout, what))

