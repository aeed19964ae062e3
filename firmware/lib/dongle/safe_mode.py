"""Safe mode: after too many boots that never got healthy, the loader starts only this.

Wi-Fi, a small web page and OTA: no meter reader, no MQTT, no history, so whatever broke the
runtime does not run, and the dongle can still be updated (or told to try again) without a cable.

    GET  /             what happened, as a page
    GET  /api/status   {"mode": "safe", "version", "ota": {... "last_error"}}
    POST /api/ota/push {"url", "force"}        [auth] install a release (it boots on trial)
    POST /api/reboot                           [auth] clear the boot counter and start normally
"""
import asyncio
import json
import sys

from . import health
from .hw import load as load_hw

VERSION = "safe"
PAGE = """<!doctype html><meta name=viewport content="width=device-width">
<title>meterkit: safe mode</title><h1>meterkit is in safe mode</h1>
<p>The app did not start properly several times in a row, so only Wi-Fi, this page and updates
run. Install a release with <code>meterkit ota push</code> (POST /api/ota/push), or try the
installed version again with POST /api/reboot.</p><p>Last error: <code>%s</code></p>"""


class SafeApp:
    """The few App attributes the OTA code and the routes use."""

    def __init__(self, argv):
        from . import config
        self.hw = load_hw()
        self.data = self.hw.data_dir(argv)
        self.cfg = config.load(self.data + "/config.json")
        # the built-in app's version is unknown here: 0.0.0, so any release is newer
        self.stats = {"version": health.version("0.0.0"), "ota_status": None, "ota_error": None}
        self.wifi = self.hw.Wifi(self.cfg["wifi"]["ssid"], self.cfg["wifi"]["password"])
        self.restart = self.reboot = False
        from .web import auth
        self.sessions = auth.Sessions(lambda: 0)

    def say(self, *words):
        print(*words)

    def request_restart(self, delay_ms=1000):
        async def later():
            await asyncio.sleep_ms(delay_ms)
            self.restart = True
        asyncio.create_task(later())

    async def handle(self, request):
        from .web import auth
        from .web.http import Response, error_response, json_response
        path, method = request.path, request.method
        if path == "/api/status" and method == "GET":
            return json_response({"mode": "safe", "version": self.stats["version"],
                                  "ota": health.report(self.stats)})
        if path in ("/", "/index.html") and method == "GET":
            why = health.read_state(health.BOOT["root"])["last_error"] or "none recorded"
            why = why.replace("&", "&amp;").replace("<", "&lt;")
            return Response(body=(PAGE % why).encode(), content_type="text/html")
        if method != "POST" or path not in ("/api/ota/push", "/api/reboot"):
            return error_response(404)
        if not auth.authorized(request, self.cfg["admin"]["password"], self.sessions):
            return error_response(401, "log in first (HTTP Basic, user admin)")
        if path == "/api/reboot":
            state = health.read_state(health.BOOT["root"])
            state["boots"] = 0
            health.write_state(health.BOOT["root"], state)
            self.reboot = True
            self.request_restart()
            return json_response({"ok": True, "restart": True})
        from .web.api import ota_push
        return await ota_push(self, request)

    async def run(self):
        from .web.http import Server
        server = None
        port = self.cfg["http"]["port"] or 80
        try:
            server = await Server(self.handle).start("0.0.0.0", port)
            self.say("safe mode: web on port %d" % port)
        except OSError as e:
            self.say("safe mode: cannot listen on port %d: %s" % (port, e))
        while not self.restart:
            await self.wifi.keep_up()
            for _ in range(10):
                if self.restart:
                    break
                await asyncio.sleep_ms(500)
        if server is not None:
            server.close()
        await asyncio.sleep_ms(20)


def main(argv=None):
    argv = sys.argv if argv is None else argv
    app = SafeApp(argv)
    print("safe mode:", json.dumps(health.report()))
    asyncio.run(app.run())
    app.hw.reset()
    asyncio.new_event_loop()
    return "reboot"
