"""The dongle's web side: HTTP server, API routes, login sessions, captive DNS, static pages."""
