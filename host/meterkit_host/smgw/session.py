"""HTTPS to a gateway's HAN interface: the pinned certificate, digest auth, client certificates,
bounded answers, and errors that say what to do.

    http = Http(spec, state)            # spec: a checked [[gateways]] entry; state: guard.State
    http.open()                         # the certificate against the pin (trust on first use)
    http.exchange(request)              # a family's meterkit.smgw.exchange.Request: the body
                                        # streamed into request.answer; GatewayError unless 2xx
    page = http.fetch("GET", path, what)   # Page, whatever the status (the probe)
    http.close()                        # ends the TCP/TLS connection (and with it the HTTP session)

`requests` does the HTTP: its Session keeps the cookies, and urllib3's assert_fingerprint checks the
certificate of every connection it opens against the pinned SHA-256. Digest auth is the one the
dongle computes too (meterkit.smgw.digest), in a requests auth hook. A gateway's certificate is
self-signed, so no CA can vouch for it: the first connection shows and stores its fingerprint, and
a different one later is refused before any credential is sent.
"""
import hashlib
import logging
import socket
import ssl
import time
from urllib.parse import urlsplit

from meterkit.smgw import GatewayError
from meterkit.smgw.digest import Digest
from meterkit.smgw.exchange import pretty, refusal, timeout_message

log = logging.getLogger("meterkit.smgw")

MAX_PAGE = 4 << 20      # a gateway page is a few KB; more is a broken or hostile answer


def fingerprint(der):
    """SHA-256 of a DER certificate as browsers print it: 'AB:CD:…' (32 pairs)."""
    return pretty(hashlib.sha256(der).hexdigest())


class Page:
    """A bounded answer: status, headers, body bytes, the cookie names it set, its Date header."""

    def __init__(self, status, headers, body, cookies):
        self.status, self.headers, self.body, self.cookies = status, headers, body, cookies
        self.date = headers.get("Date")

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")


def _digest_auth(user, password, force_md5):
    from requests.auth import AuthBase
    from requests.cookies import extract_cookies_to_jar

    class SharedDigest(AuthBase):
        """meterkit.smgw.digest in requests: once a challenge is known every request carries its
        answer; a 401 is answered once (again only when the gateway calls the nonce stale), so a
        wrong password costs one login, not several towards a lockout."""

        def __init__(self):
            self.digest = Digest(user, password, force_md5)

        def __call__(self, prepared):
            header = self.digest.authorization(prepared.method, prepared.path_url)
            if header:
                prepared.headers["Authorization"] = header
            prepared.register_hook("response", self.on_401)
            return prepared

        def on_401(self, response, **kwargs):
            if response.status_code != 401 or not self.digest.answer(
                    response.headers.get("WWW-Authenticate"),
                    "Authorization" in response.request.headers):
                return response
            response.content   # read to the end: the connection is used again
            response.close()
            retry = response.request.copy()
            retry.hooks = {"response": []}   # its answer is final
            extract_cookies_to_jar(retry._cookies, response.request, response.raw)
            retry.prepare_cookies(retry._cookies)
            retry.headers["Authorization"] = self.digest.authorization(retry.method,
                                                                       retry.path_url)
            answer = response.connection.send(retry, **kwargs)
            answer.history.append(response)
            answer.request = retry
            return answer

    return SharedDigest()


class Http:
    def __init__(self, spec, state, force_md5=False):
        parts = urlsplit(spec["url"])
        self.host, self.port = parts.hostname, parts.port or 443
        self.base = "https://%s:%d" % (self.host if ":" not in self.host else "[%s]" % self.host,
                                       self.port)
        self.where = "%s:%d" % (self.host, self.port)
        self.path = parts.path.rstrip("/")
        self.spec, self.state = spec, state
        self.timeout = spec["timeout_s"]
        self.cert = None
        if spec["client_cert"]:
            self.cert = (spec["client_cert"], spec["client_key"] or None)
        self.auth = None
        self.use_digest(force_md5)
        self.session = None
        self.last_date = None              # the Date header of the last answer: the gateway's clock
        self.silent_on_bad_login = False   # Theben: wrong credentials get no answer at all

    def use_digest(self, force_md5):
        """Digest auth for the family: the challenge's algorithm, or MD5 whatever it says."""
        self.auth = _digest_auth(self.spec["user"], self.spec["_password"], force_md5)

    # -- TLS: trust on first use ---------------------------------------------------------------

    def peer_fingerprint(self):
        """A TLS handshake without credentials, to read the certificate the gateway shows."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE   # self-signed: the pin below is the check
        if self.cert:
            self._load_client_cert(context)
        try:
            with socket.create_connection((self.host, self.port), self.timeout) as raw:
                with context.wrap_socket(raw, server_hostname=self.host) as tls:
                    return fingerprint(tls.getpeercert(binary_form=True))
        except socket.timeout:
            raise GatewayError("unreachable", "no TLS connection to %s within %d s: is the HAN "
                               "port cabled, and does this host have an address in the gateway's "
                               "network?" % (self.where, self.timeout))
        except ssl.SSLError as e:
            raise GatewayError("tls", "TLS handshake with %s failed (%s)%s" % (
                self.where, e.reason or e, self._cert_hint()))
        except OSError as e:
            raise GatewayError("unreachable", "cannot reach %s (%s)" % (self.where,
                                                                        e.strerror or e))

    def _cert_hint(self):
        return "" if self.cert else ("; if the gateway wants a client certificate, set "
                                     "client_cert and client_key")

    def _load_client_cert(self, context):
        try:
            context.load_cert_chain(*self.cert)
        except (OSError, ssl.SSLError) as e:
            raise GatewayError("tls", "cannot load the client certificate %s (%s)" % (
                self.cert[0], getattr(e, "strerror", None) or e))

    def open(self):
        seen = self.peer_fingerprint()
        pinned = self.state.pin()
        if pinned is None:
            self.state.set_pin(seen)
            log.warning("%s: first connection to %s: pinned its certificate, SHA-256 %s (stored in "
                        "%s); compare it with the gateway's documentation or browser view",
                        self.spec["name"], self.where, seen, self.state.path)
        elif pinned != seen:
            raise GatewayError("cert_changed", "the certificate of %s changed: pinned SHA-256 %s, "
                               "now %s. No credentials were sent. If the gateway was replaced or "
                               "renewed its certificate, check the new fingerprint and run "
                               "`meterkit smgw --accept-new-cert --config …` (or delete %s)"
                               % (self.where, pinned, seen, self.state.path))
        self.session = self._session(seen)

    def _session(self, pin):
        import requests
        from requests.adapters import HTTPAdapter

        class Pinned(HTTPAdapter):
            def init_poolmanager(self, *args, **kwargs):
                kwargs["assert_fingerprint"] = pin.replace(":", "").lower()
                HTTPAdapter.init_poolmanager(self, *args, **kwargs)

        session = requests.Session()
        session.verify = False          # no CA: every connection is checked against the pin
        session.trust_env = False       # no proxies or netrc: the gateway is on the local link
        session.mount("https://", Pinned(max_retries=0))
        session.cert = self.cert
        session.headers["User-Agent"] = "meterkit"
        return session

    # -- requests ---------------------------------------------------------------------------------

    def exchange(self, request):
        """Send a family's Request; its body goes into request.answer as it arrives."""
        if request.login:
            self.session.cookies.clear()   # a stale session cookie would be refused

        def stream(response, deadline):
            self._refuse(response.status_code, request.what)
            answer = request.answer
            for chunk in self._chunks(response, request.what, deadline):
                answer.feed(chunk)
            answer.cookies = [cookie.name for cookie in response.cookies]
            answer.close()
            return answer

        return self._call(request.method, request.path, request.what, request.auth, stream,
                          data=request.body or None, headers=dict(request.headers))

    def fetch(self, method, path, what, auth=True, **kwargs):
        """The answer whatever its status, as a Page; GatewayError when there is none."""
        def buffered(response, deadline):
            body = b"".join(self._chunks(response, what, deadline))
            cookies = [cookie.name for cookie in response.cookies]
            return Page(response.status_code, response.headers, body, cookies)

        return self._call(method, path, what, auth, buffered, **kwargs)

    def _refuse(self, status, what):
        refused = refusal(status, self.where, self.spec["user"], what)
        if refused is not None:
            raise refused

    def _call(self, method, path, what, auth, consume, **kwargs):
        """consume(response, deadline) inside the request, its errors turned into GatewayError."""
        import requests
        deadline = time.monotonic() + 2 * self.timeout
        try:
            with self.session.request(method, self.base + path, auth=self.auth if auth else None,
                                      timeout=self.timeout, stream=True, allow_redirects=False,
                                      **kwargs) as response:
                self.last_date = response.headers.get("Date") or self.last_date
                return consume(response, deadline)
        except requests.exceptions.SSLError as e:
            if "Fingerprints did not match" in str(e):
                raise GatewayError("cert_changed", "the certificate of %s changed during the cycle "
                                   "(%s); nothing more was sent" % (self.where, _reason(e)))
            raise GatewayError("tls", "TLS with %s failed (%s)%s" % (
                self.where, _reason(e), self._cert_hint()))
        except requests.exceptions.ConnectTimeout:
            raise GatewayError("unreachable", "no connection to %s within %d s" % (
                self.where, self.timeout))
        except (requests.exceptions.ReadTimeout, socket.timeout):
            raise GatewayError("timeout", self._timeout_message(what))
        except requests.exceptions.ConnectionError as e:
            if "timed out" in str(e):
                raise GatewayError("timeout", self._timeout_message(what))
            raise GatewayError("unreachable", "lost the connection to %s during %s (%s)" % (
                self.where, what, _reason(e)))
        except requests.exceptions.RequestException as e:
            raise GatewayError("http", "%s to %s failed (%s)" % (what, self.where, _reason(e)))

    def _chunks(self, response, what, deadline):
        size = 0
        for chunk in response.iter_content(65536):
            size += len(chunk)
            if size > MAX_PAGE:
                raise GatewayError("format", "%s: the gateway's answer exceeds %d MB" % (
                    what, MAX_PAGE >> 20))
            if time.monotonic() > deadline:
                raise GatewayError("timeout", self._timeout_message(what))
            yield chunk

    def _timeout_message(self, what):
        return timeout_message(self.where, what, self.timeout, self.silent_on_bad_login)

    def close(self):
        if self.session is not None:
            self.session.close()
            self.session = None


def _reason(error):
    """The innermost reason of a requests/urllib3 error, without the pool's boilerplate."""
    while error.args and isinstance(error.args[0], Exception):
        error = error.args[0]
    reason = getattr(error, "reason", None)
    return str(reason if reason is not None else error)
