"""The dongle's web side: HTTP server (http), API routes (api), login sessions (auth), captive
DNS (dns), static pages (static). start(app) wires them, with the portal and history, into a
running App.

Only the listening socket and this small accept loop stay in the heap: the server and the API
(~30 KB on the unix port) are imported when a connection arrives and forgotten again after IDLE_S
without one. Login sessions outlive that, in a list kept here.
"""
import asyncio

from .. import unload

IDLE_S = 30
# loaded for requests only; none of them is imported by the rest of the runtime
HANDLERS = ("web.api", "web.static", "web.auth", "web.http", "config")


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
        if self.server is None:
            from .api import Api
            from .http import Server
            self.server = Server(Api(self.app, self.sessions).handle)
        await self.server.connection(reader, writer)

    async def unload_when_idle(self):
        while True:
            await asyncio.sleep(1)
            self.idle_s += 1
            if self.server is not None and not self.server.active and self.idle_s >= IDLE_S:
                self.server = None
                unload(*HANDLERS)

    def close(self):
        if self.listener is not None:
            self.listener.close()
            self.listener = None


async def start(app):
    """History, setup portal and web server for app; returns an async close() for restarts."""
    from ..history import History
    from ..portal import Portal
    app.history = History(app.data + "/history")
    app.portal = Portal(app)
    tasks = [asyncio.create_task(app.portal.run())]
    web = Web(app)
    port = app.cfg["http"]["port"]
    if port:
        try:
            await web.listen(port)
            tasks.append(asyncio.create_task(web.unload_when_idle()))
            app.say("web: http://localhost:%d/ (%s mode)" % (port, app.portal.mode))
        except OSError as e:
            app.say("web: cannot listen on port %d: %s" % (port, e))

    async def close():
        for task in tasks:
            task.cancel()
        app.portal.close()
        web.close()
        if app.history.path:
            app.history.save()
        await asyncio.sleep_ms(20)   # let the cancelled tasks close their sockets
    return close
