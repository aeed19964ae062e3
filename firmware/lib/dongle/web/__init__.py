"""The dongle's web side: HTTP server (http), API routes (api), login sessions (auth), captive
DNS (dns), static pages (static). start(app) wires them, with the portal and history, into a
running App; only this function is loaded until a request needs the rest."""


async def start(app):
    """History, setup portal and web server for app; returns an async close() for restarts."""
    import asyncio
    from ..history import History
    from ..portal import Portal
    from .api import Api
    from .http import Server
    app.history = History(app.data + "/history")
    app.portal = Portal(app)
    portal_task = asyncio.create_task(app.portal.run())
    server = None
    port = app.cfg["http"]["port"]
    if port:
        try:
            server = await Server(Api(app).handle).start("0.0.0.0", port)
            app.say("web: http://localhost:%d/ (%s mode)" % (port, app.portal.mode))
        except OSError as e:
            app.say("web: cannot listen on port %d: %s" % (port, e))

    async def close():
        portal_task.cancel()
        app.portal.close()
        if server is not None:
            server.close()
        if app.history.path:
            app.history.save()
        await asyncio.sleep_ms(20)   # let the cancelled tasks close their sockets
    return close
