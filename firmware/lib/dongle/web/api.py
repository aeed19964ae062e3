"""The dongle's routes: pages, captive-portal probes and the JSON API (the pages' contract).

    api = Api(app, sessions); server = Server(api.handle)

`app` is the running dongle.app.App: its stats, config, reader, wifi, portal and history.
Secrets never leave in a response except in GET /api/backup (an explicit download); a posted
MASK ("********") keeps the stored secret. With an admin password set, [auth] routes need the
session cookie or HTTP Basic auth (auth.py); without one (setup) they are open.
"""
import asyncio
import json

from meterkit.reading import json_string, json_value

from . import auth, static
from .http import HttpError, Response, error_response, json_response, redirect

MASK = "********"
PROBES = ("/generate_204", "/gen_204", "/hotspot-detect.html", "/connecttest.txt", "/ncsi.txt",
          "/fwlink", "/canonical.html", "/success.txt", "/library/test/success.html",
          "/redirect")
WRONG_PASSWORD_DELAY_S = 1


def _meter_name(reading):
    """The meter id as the pages show it (topics.meter_name); loaded here, not at import: safe
    mode imports this module for ota_push alone."""
    if reading is None:
        return None
    from ..topics import meter_name
    return meter_name(reading)


def _config():
    from .. import config    # ~15 KB of code: loaded only while a request needs it
    return config


class Api:
    def __init__(self, app, sessions=None):
        """sessions: a list that keeps the logins when this Api is dropped and made again."""
        self.app = app
        self.sessions = auth.Sessions(app.uptime_s, sessions)
        self.routes = (   # (method, path, handler, needs auth)
            ("GET", "/api/status", self.status, False),
            ("GET", "/api/live", self.live, True),
            ("GET", "/api/history", self.history, True),
            ("GET", "/api/config", self.get_config, True),
            ("POST", "/api/config", self.post_config, True),
            ("GET", "/api/wifi/scan", self.scan, True),
            ("POST", "/api/test/wifi", self.test_wifi, True),
            ("POST", "/api/test/mqtt", self.test_mqtt, True),
            ("POST", "/api/test/keys", self.test_keys, True),
            ("GET", "/api/modbus/models", self.modbus_models, True),
            ("POST", "/api/test/modbus", self.test_modbus, True),
            ("POST", "/api/login", self.login, False),
            ("POST", "/api/logout", self.logout, False),
            ("GET", "/api/backup", self.backup, True),
            ("POST", "/api/restore", self.restore, True),
            ("POST", "/api/factory-reset", self.factory_reset, True),
            ("POST", "/api/reboot", self.reboot, True),
            ("POST", "/api/ota/push", self.ota_push, True),
        )

    @property
    def setup_mode(self):
        return self.app.portal is not None and self.app.portal.mode == "setup"

    async def handle(self, request):
        path, method = request.path, request.method
        known = False
        for verb, route, handler, needs_auth in self.routes:
            if route == path:
                known = True
                if verb == method or (verb == "GET" and method == "HEAD"):
                    if needs_auth and not auth.authorized(request, self.app.cfg["admin"]["password"],
                                                          self.sessions):
                        return error_response(401, "log in first (POST /api/login)")
                    return await handler(request)
        if known:
            return error_response(405)
        if method not in ("GET", "HEAD"):
            return error_response(405 if not path.startswith("/api/") else 404)
        return self.page(request)

    def page(self, request):
        path = request.path
        if path in PROBES:
            if self.setup_mode:
                return redirect(self._portal_url())
            return Response(204) if path.endswith("204") else error_response(404)
        if path == "/":
            path = "/setup" if self.setup_mode else "/live"
        if not path.startswith("/api/"):
            gzip = "gzip" in request.header("accept-encoding")
            found = static.serve(self.app.hw.WEB_ROOT, path, gzip)
            if found is not None:
                return found
            if self.setup_mode:   # any page of any host name: the captive portal
                return redirect(self._portal_url())
        return error_response(404)

    def _portal_url(self):
        port = self.app.cfg["http"]["port"]
        return "http://%s%s/setup" % (self.app.portal.ap.ip, "" if port == 80 else ":%d" % port)

    # -- status and data ---------------------------------------------------------------------------

    async def status(self, request):
        app, stats = self.app, self.app.stats
        reading = app.last_reading
        decoder = dict((name, stats.get("frames_" + name, 0))
                       for name in ("ok", "crc", "auth", "replay", "format"))
        decoder["last_error"] = stats.get("last_error")
        decoder["backends"] = _backends()
        wifi = app.wifi
        return json_response({
            "mode": "setup" if self.setup_mode else "normal", "version": stats["version"],
            "uptime_s": app.uptime_s(), "heap_free": app.hw.free_heap(), "rssi": stats.get("rssi"),
            "wifi": {"ssid": app.cfg["wifi"]["ssid"], "connected": bool(wifi.connected),
                     "ip": getattr(wifi, "ip", None)},
            "mqtt": {"connected": bool(app.publisher and app.publisher.connected),
                     "queued": len(app.spool), "dropped": app.spool.dropped},
            "decoder": decoder,
            "meter": {"id": _meter_name(reading),
                      "profile": app.cfg["meter"]["profile"],
                      "last_telegram": reading.timestamp if reading else None},
            "ota": _ota_report(stats),
        })

    async def live(self, request):
        reading = self.app.last_reading
        if reading is None:
            return json_response({"timestamp": None, "meter_id": None, "harmonized": {},
                                  "values": {}})
        from meterkit.harmonize import harmonize
        harmonized = ", ".join("%s: %s" % (json_string(name), value)
                               for name, value in harmonize(reading))
        values = ", ".join("%s: {\"value\": %s, \"unit\": %s}" % (
            json_string(obis), json_value(v.value), json_string(v.unit))
            for obis, v in reading.values)
        body = '{"timestamp": %s, "meter_id": %s, "harmonized": {%s}, "values": {%s}}' % (
            json_value(reading.timestamp), json_value(_meter_name(reading)), harmonized, values)
        return Response(body=body.encode())

    async def history(self, request):
        name = request.param("range", "hour")
        try:
            points = self.app.history.points(name)
        except ValueError as e:
            raise HttpError(400, str(e))
        body = '{"range": %s, "points": [%s]}' % (
            json_string(name), ", ".join("[%d, %s]" % (t, v) for t, v in points))
        return Response(body=body.encode())

    # -- configuration -----------------------------------------------------------------------------

    async def get_config(self, request):
        return json_response(_config().public_view(self.app.cfg))

    async def post_config(self, request):
        config = _config()
        doc = _nest(request.data(), config)
        merged = dict((section, dict(values)) for section, values in self.app.cfg.items())
        for section, values in doc.items():
            if isinstance(values, dict) and section in merged:
                for name, value in values.items():
                    if not (value == MASK and (section, name) in config.SECRETS):
                        merged[section][name] = value
            else:
                merged[section] = values    # validate() names what is wrong with it
        return self._save(config, merged)

    async def restore(self, request):
        config = _config()
        return self._save(config, request.data())

    def _save(self, config, doc):
        cfg, errors = config.validate(doc)
        if not cfg["admin"]["password"] and not [e for e in errors if e.startswith("admin.")]:
            errors.append("admin.password: set an admin password to protect the dongle")
        if errors:
            return json_response({"errors": dict(e.split(": ", 1) for e in errors)}, 400)
        config.save(self.app.data + "/config.json", cfg)
        if self.app.portal is not None:
            self.app.portal.saved(cfg)
        self.app.cfg = cfg
        self.app.request_restart()
        return json_response({"ok": True, "restart": True})

    async def backup(self, request):
        return Response(body=_config().to_json(self.app.cfg).encode(), headers=(
            ("Content-Disposition", 'attachment; filename="meterkit-%s.json"' % self.app.node),))

    # -- tests ------------------------------------------------------------------------------------

    async def scan(self, request):
        networks = [{"ssid": ssid, "rssi": rssi, "secure": secure}
                    for ssid, rssi, secure in self.app.wifi.scan()]
        return json_response({"networks": networks})

    async def test_wifi(self, request):
        doc = request.data()
        ssid = _field(doc, "ssid", str)
        password = self._secret(doc, "password", "wifi")
        ok, message = await self.app.wifi.try_connect(ssid, password)
        return json_response({"ok": ok, "message": message})

    async def test_mqtt(self, request):
        doc = request.data()
        host = _field(doc, "host", str)
        port = doc.get("port", 1883)
        if type(port) is not int or not 1 <= port <= 65535:
            raise HttpError(400, "port must be 1..65535")
        from ..mqtt import MQTTClient, MQTTError
        try:
            ssl = None
            if doc.get("tls"):
                from ..mqtt_connect import tls_context
                ssl = tls_context(doc.get("ca") or None)
            client = MQTTClient("meterkit-test-" + self.app.node[-6:], host, port,
                                doc.get("user") or None,
                                self._secret(doc, "password", "mqtt") or None, ssl=ssl)
            await client.connect(timeout=5)
            await client.disconnect()
        except (MQTTError, OSError, ValueError) as e:
            return json_response({"ok": False, "message": str(e) or type(e).__name__})
        return json_response({"ok": True, "message": "connected to %s:%d" % (host, port)})

    async def test_keys(self, request):
        doc = request.data()
        config = _config()
        try:
            key = config.hex_key(self._secret(doc, "key", "meter"))
            auth_key = config.hex_key(self._secret(doc, "auth_key", "meter"))
        except ValueError as e:
            raise HttpError(400, "keys %s" % e)
        from .. import profiles
        profile = self.app.cfg["meter"]["profile"]   # (a gateway's meters need no keys)
        ok, message, detail = try_keys(self.app.reader.last_bytes(), key, auth_key,
                                       () if profile == "smgw" else profiles.framings(profile))
        return json_response({"ok": ok, "message": message, "detail": detail})

    async def modbus_models(self, request):
        from .modbus import models
        return json_response({"models": models()})

    async def test_modbus(self, request):
        """{"model", "slave", "line" (empty: the model's factory line), "register" (default: the
        map's first)}: that register read over the bus now (web/modbus.py)."""
        from .modbus import test
        return Response(body=await test(self.app, request.data()))

    def _secret(self, doc, name, section):
        value = doc.get(name, "")
        if not isinstance(value, str):
            raise HttpError(400, "%s must be text" % name)
        return self.app.cfg[section][name] if value == MASK else value

    # -- sessions and the device ---------------------------------------------------------------------

    async def login(self, request):
        password = request.data().get("password")
        stored = self.app.cfg["admin"]["password"]
        if stored and not auth.check_password(password, stored):
            await asyncio.sleep(WRONG_PASSWORD_DELAY_S)   # slows guessing down
            return error_response(401, "wrong password")
        cookie = auth.session_cookie(self.sessions.new())
        return json_response({"ok": True}, headers=(("Set-Cookie", cookie),))

    async def logout(self, request):
        self.sessions.drop(auth.cookie_value(request.header("cookie")))
        return json_response({"ok": True}, headers=(("Set-Cookie", auth.session_cookie("", 0)),))

    async def factory_reset(self, request):
        from ..portal import factory_reset
        factory_reset(self.app)
        return json_response({"ok": True, "restart": True})

    async def reboot(self, request):
        self.app.request_restart()
        return json_response({"ok": True, "restart": True})

    async def ota_push(self, request):
        """{"url": release server (default ota.url), "force": downgrade allowed}: install now."""
        return await ota_push(self.app, request)


async def ota_push(app, request):
    """The OTA route, shared with safe mode: 200 and a reboot into the trial, or 409 and why."""
    from ..ota import Rejected, install
    doc = request.data()
    url = doc.get("url") or app.cfg["ota"]["url"]
    if not isinstance(url, str) or not url:
        raise HttpError(400, "url is missing (and no ota.url is configured)")
    try:
        version = await install(app, url, doc.get("force") is True)
    except Rejected as e:
        return json_response({"ok": False, "error": str(e)}, 409)
    return json_response({"ok": True, "version": version, "restart": True})


def _ota_report(stats):
    from .. import health
    return health.report(stats)


def try_keys(raw, key, auth_key, framings):
    """(ok, message, detail): the keys (hex) tried on the captured bytes with a fresh decoder,
    so the core's key diagnostics (security.py) name what is wrong."""
    from binascii import unhexlify
    from meterkit.errors import AuthError
    from meterkit.reading import Reading
    events = _decode(raw, unhexlify(key) if key else None,
                     unhexlify(auth_key) if auth_key else None, framings)
    readings = _only(events, Reading)
    if readings:
        if key and _only(_decode(raw, None, None, framings), Reading):
            return True, "the meter sends unencrypted data: no key is needed", ""
        warnings = readings[-1].warnings
        tagless = [w for w in warnings if "no tag" in w]
        return True, "this meter sends no tag" if tagless else "the keys decode the last frame", \
            "; ".join(warnings)
    refused = _only(events, AuthError)
    if not refused:
        return False, "no frame captured yet", events[-1].message if events else ""
    detail = refused[-1].message
    if "authentication key wrong" in detail:
        return False, "the authentication key is wrong", detail
    if "encryption key wrong" in detail:
        return False, "the encryption key is wrong", detail
    return False, detail, detail


def _decode(raw, key, auth_key, framings):
    from meterkit.stream import StreamDecoder
    if not raw:
        return []
    decoder = StreamDecoder(key, auth_key, framings=framings)
    return decoder.feed(raw) + decoder.flush()


def _only(events, kind):
    return [e for e in events if isinstance(e, kind)]


def _field(doc, name, kind):
    value = doc.get(name)
    if not isinstance(value, kind) or not value:
        raise HttpError(400, "%s is missing" % name)
    return value


def _nest(doc, config):
    """Form posts name fields "section.field" and send text: make them JSON-shaped."""
    if not [key for key in doc if "." in key]:
        return doc
    nested = {}
    defaults = config.defaults()
    for key, value in doc.items():
        section, _, name = key.partition(".")
        default = defaults.get(section, {}).get(name)
        if isinstance(value, str) and type(default) is bool:
            value = value in ("1", "true", "on", "yes")
        elif isinstance(value, str) and type(default) is int and value.strip().isdigit():
            value = int(value)
        nested.setdefault(section, {})[name] = value
    return nested


def _backends():
    try:
        from meterkit.backends import backends
    except ImportError:
        return {}
    return dict(backends(load=False))
