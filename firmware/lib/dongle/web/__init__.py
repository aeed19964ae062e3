"""The dongle's web side: HTTP server (http), API routes (api), login sessions (auth), captive
DNS (dns), static pages (static). start(app) wires them, with the portal and history, into a
running App.

Only the listening socket and this small accept loop stay in the heap: the server and the API
(~38 KB on the unix port) are imported when a connection arrives and forgotten again after IDLE_S
without one, or at once when the heap runs out (shed(): the meter side comes first; a request
that finds no room gets a 503). Login sessions outlive that, in a list kept here.
"""
import asyncio

from .. import exists, unload

IDLE_S = 30
PENDING = "/ap_pending"   # marker: the setup was saved, keep the AP up until the station connects
# loaded for requests only; none of them is imported by the rest of the runtime
HANDLERS = ("web.api", "web.static", "web.auth", "web.http", "web.modbus", "config")
BUSY = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 31\r\n"
        b"Retry-After: 5\r\n\r\nout of memory, try again later\n")


class Web:
    def __init__(self, app):
        self.app = app
        self.server = None      # http.Server with the API, while loaded
        self.sessions = []      # auth.Sessions' store: survives an unload
        self.idle_s = 0
        self.listener = None

    async def listen(self, port):
        self.listener = await asyncio.start_server(self._accept, "0.0.0.0", port)

    async def _accept(self, reader, writer):
        self.idle_s = 0
        try:
            if self.server is None:
                from .api import Api
                from .http import Server
                self.server = Server(Api(self.app, self.sessions).handle)
            await self.server.connection(reader, writer)
        except MemoryError:   # no room for the handlers or this answer: the meter side comes first
            self.shed()
            self.app.stats["out_of_memory"] += 1
            try:
                writer.write(BUSY)
                await writer.drain()
                writer.close()
                await writer.wait_closed()
            except OSError:
                pass

    def shed(self):
        """Drop the handlers now (a request in flight keeps what it uses until it ends)."""
        self.server = None
        unload(*HANDLERS)

    async def unload_when_idle(self):
        while True:
            await asyncio.sleep(1)
            self.idle_s += 1
            if self.server is not None and not self.server.active and self.idle_s >= IDLE_S:
                self.shed()

    def close(self):
        if self.listener is not None:
            self.listener.close()
            self.listener = None


def _setup_wanted(app, button):
    """Could the setup portal do anything now? Cheap enough for every second."""
    wifi = app.cfg["wifi"]
    wifi_lost = not app.wifi.connected and wifi["ssid"] and wifi["ap_after_s"]
    return (not app.cfg["admin"]["password"] or wifi_lost or button.pressed()
            or exists(app.data + PENDING))


def _portal(app, button):
    from ..portal import Portal
    return Portal(app, button)


async def _watch_setup(app):
    """Run a Portal (portal.py) while it has something to do; in normal mode with the Wi-Fi up
    its code stays out of the heap."""
    button = app.hw.Button(app.board, app.data)
    while True:
        if _setup_wanted(app, button):
            app.portal = _portal(app, button)
            try:
                await app.portal.run()
            finally:
                app.portal.close()
                app.portal = None
                unload("portal", "web.dns")
        await asyncio.sleep(1)


async def start(app):
    """History, setup portal and web server for app; returns an async close() for restarts."""
    from ..history import History
    app.history = History(app.data + "/history")
    tasks = [asyncio.create_task(_watch_setup(app))]
    web = Web(app)
    app.shed = web.shed
    port = app.cfg["http"]["port"]
    if port:
        try:
            await web.listen(port)
            tasks.append(asyncio.create_task(web.unload_when_idle()))
            mode = app.portal.mode if app.portal else "normal"
            app.say("web: http://localhost:%d/ (%s mode)" % (port, mode))
        except OSError as e:
            app.say("web: cannot listen on port %d: %s" % (port, e))

    async def close():
        for task in tasks:
            task.cancel()
        if app.portal:
            app.portal.close()
        web.close()
        if app.history.path:
            app.history.save()
        await asyncio.sleep_ms(20)   # let the cancelled tasks close their sockets
    return close
