"""Setup mode: when the dongle opens its own access point, captive DNS and setup page.

    setup = Setup(configured, ssid, ap_after_s, ap_timeout_s, pending)
    actions = setup.step(now_s, connected, pressed)   # ["ap_up" | "ap_down" | "factory_reset"]
    portal = Portal(app, button); await portal.run()   # the same, wired to the hardware, until
                                                       # the setup is back to normal and quiet

The access point (named meterkit-<device id>) is up, and the mode is "setup":
  * on first boot and after a factory reset (no admin password yet), until the setup is saved;
  * after the setup was saved (the `ap_pending` marker), until the station connection is
    confirmed, so a mistyped Wi-Fi password never strands the user;
  * when the configured Wi-Fi has been unreachable for wifi.ap_after_s; it closes when the
    station connects again, or after ap.timeout s (then the count starts over).
Holding the button for LONG_PRESS_S is a factory reset. Setup is a pure state machine (tested
with made-up clocks); Portal does the I/O once a second. A dongle in normal mode with its Wi-Fi
up does not even load this module: web.start() watches the cheap signs (no admin password, the
marker, Wi-Fi down, button held) and runs a Portal while it has something to do.
"""
import asyncio
import os

from . import exists
from .web import PENDING

LONG_PRESS_S = 5
RESET_FILES = ("/meter_id", "/history", PENDING)
# a factory reset forgets everything but what describes the hardware (and the unix port's setup)
KEPT = (("board", "name"), ("meter", "source"), ("http", "port"))


class Setup:
    def __init__(self, configured, ssid, ap_after_s, ap_timeout_s=0, pending=False):
        self.configured, self.ssid = configured, ssid
        self.ap_after_s, self.ap_timeout_s = ap_after_s, ap_timeout_s
        self.pending = pending
        self.ap = False
        self.down_since = None      # when the station was last seen disconnected, first
        self.ap_since = None
        self.pressed_since = None
        self.reset_sent = False

    @property
    def mode(self):
        return "setup" if self.ap else "normal"

    @property
    def quiet(self):
        """Normal mode with nothing under way: no timer running, nothing pending."""
        return (self.configured and not self.ap and not self.pending
                and self.down_since is None and self.pressed_since is None)

    def step(self, now, connected, pressed=False):
        actions = []
        if self._long_press(now, pressed):
            actions.append("factory_reset")
        want = self._want_ap(now, connected)
        if want != self.ap:
            self.ap, self.ap_since = want, now if want else None
            actions.append("ap_up" if want else "ap_down")
        return actions

    def _long_press(self, now, pressed):
        if not pressed:
            self.pressed_since, self.reset_sent = None, False
            return False
        if self.pressed_since is None:
            self.pressed_since = now
        if not self.reset_sent and now - self.pressed_since >= LONG_PRESS_S:
            self.reset_sent = True
            return True
        return False

    def _want_ap(self, now, connected):
        if not self.configured:
            return True
        if connected:
            self.down_since, self.pending = None, False
            return False
        if self.pending:
            return True
        if not self.ssid or not self.ap_after_s:
            return False
        if self.down_since is None:
            self.down_since = now
        if self.ap and self.ap_timeout_s and now - self.ap_since >= self.ap_timeout_s:
            self.down_since = now   # give the station another ap_after_s on its own
            return False
        return self.ap or now - self.down_since >= self.ap_after_s


class Portal:
    """Setup wired to the access point, captive DNS, button and marker file of one App."""

    def __init__(self, app, button):
        self.app = app
        cfg = app.cfg
        self.ap = app.hw.AccessPoint()
        self.button = button
        self.setup = Setup(bool(cfg["admin"]["password"]), cfg["wifi"]["ssid"],
                           cfg["wifi"]["ap_after_s"], cfg["ap"]["timeout"],
                           exists(app.data + PENDING))
        self.dns = None
        self.essid = "meterkit-" + app.node[-6:]

    @property
    def mode(self):
        return self.setup.mode

    async def run(self):
        """Until the setup is quiet again (at once, if it never needed the portal)."""
        from time import time
        while True:
            for action in self.setup.step(int(time()), self.app.wifi.connected,
                                          self.button.pressed()):
                await self._do(action)
            if self.setup.quiet:
                _remove(self.app.data + PENDING)   # the station connected: the marker is done
                return
            await asyncio.sleep(1)

    async def _do(self, action):
        say = self.app.say
        if action == "ap_up":
            self.ap.up(self.essid)
            await self._start_dns()
            say("portal: access point", self.essid, "at", self.ap.ip)   # and its DNS answers
        elif action == "ap_down":
            self.ap.down()
            self.stop_dns()
            _remove(self.app.data + PENDING)
            say("portal: access point closed, station connected")
        elif action == "factory_reset":
            say("portal: factory reset (button)")
            factory_reset(self.app)

    async def _start_dns(self):
        from .web.dns import Dns
        try:
            self.dns = await Dns(self.ap.ip).start(port=self.app.hw.DNS_PORT)
        except OSError as e:
            self.app.say("portal: captive DNS cannot listen:", e)

    def stop_dns(self):
        if self.dns is not None:
            self.dns.close()
            self.dns = None

    def saved(self, cfg):
        """The setup was saved: keep the AP up at the next boot until the station connects."""
        if self.setup.ap and cfg["wifi"]["ssid"]:
            with open(self.app.data + PENDING, "w") as f:
                f.write("1")

    def close(self):
        self.stop_dns()


def factory_reset(app):
    from . import config
    fresh = config.defaults()
    for section, name in KEPT:
        fresh[section][name] = app.cfg[section][name]
    config.save(app.data + "/config.json", fresh)
    for name in RESET_FILES:
        _remove(app.data + name)
    app.request_restart()


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass
