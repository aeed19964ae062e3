"""PPC (Power Plus Communications) gateways: the HAN service pages at /cgi-bin/hanservice.cgi.

A session, as the open clients run it (see the README for the sources):

    GET  hanservice.cgi                       digest auth; sets the `session` cookie; the page
                                              carries the form token (input tkn) and the firmware
                                              version (#div_fwversion)
    POST tkn=…&action=meterform               the meters: <select id=meterform_select_meter>
                                              options, value = mid, text = '….<meter id>.sm'
    POST tkn=…&action=showMeterProfile&mid=…  the meter's current values: table#metervalue, cells
                                              #table_metervalues_col_{timestamp,obis,wert,einheit}
    (daily: action=showMeterValuesForm&mid=… gives the form's own mid, then
            action=showMeterValues&mid=…&from=…&to=… the day's certified 15-minute values)
    POST tkn=…&action=logout                  always: the gateway allows one session at a time

Every page may carry a fresh token; the newest is used. Rows come in pairs: the second row of a
pair (2.8.0 after 1.8.0) leaves the timestamp cell empty and inherits the first row's time. Times
are the gateway's local time without an offset (`clock.iso` gives them one). Some gateways set no
`session` cookie, or several: the token then carries the session. Pages are read as they arrive
(html.Scanner), each value row straight into the meter's values: a day's page is never held.
"""
from meterkit.clock import epoch_seconds

from . import GatewayError
from .exchange import FORM, Request, form
from .html import Scanner, text
from .values import Batch, CentralEurope, civil_date, decimal, obis_unit

PATH = "/cgi-bin/hanservice.cgi"
_CELL = "table_metervalues_col_"
_FIRMWARE_ID = "div_fwversion"


class Page:
    """What a PPC page holds that a cycle needs: the form inputs tkn and mid, the meter select's
    options, #div_fwversion, the rows of table#metervalue (each to on_row as it ends, a dict of
    cell id suffix -> text) and, with plain_rows, the cell texts of other tables' rows. Forgiving
    as browsers are: a cell, option or row left open ends where the next begins or its parent
    ends. Whatever on_row raises is kept until check(): the body is read to its end all the same,
    so the connection stays usable (for the logout)."""

    cookies = ()

    def __init__(self, on_row=None, plain_rows=False):
        self.on_row = on_row
        self.inputs = {}            # tkn, mid -> first non-empty value
        self.options = []           # (value, text) of the meter select
        self.firmware = None
        self.plain_rows = [] if plain_rows else None
        self.value_rows = 0         # table#metervalue rows with an OBIS code
        self.error = None
        self._scanner = Scanner(self)
        self._tables = []           # ids of the open tables
        self._row = None            # dict (metervalue) or list (other tables)
        self._cell = None           # [id, text parts]
        self._option = None         # [value, text parts]
        self._select = False
        self._firmware = None       # [tag, depth, text parts]

    # -- fed by the transport ------------------------------------------------------------------

    def feed(self, data):
        if self.error is None:
            try:
                self._scanner.feed(data)
            except (GatewayError, ValueError) as e:
                self.error = _format(e)

    def close(self):
        if self.error is None:
            try:
                self._scanner.close()
                self._end_cell()      # a page cut short keeps the cells and the row it had
                self._end_row()
            except (GatewayError, ValueError) as e:
                self.error = _format(e)

    def check(self):
        if self.error is not None:
            raise self.error

    def token(self):
        return self.inputs.get("tkn")

    # -- the scanner's events --------------------------------------------------------------------

    def start(self, tag, attrs):
        ident = attrs.get("id", "")
        if tag == "input":
            name = attrs.get("name", "")
            if name in ("tkn", "mid") and attrs.get("value") and name not in self.inputs:
                self.inputs[name] = attrs["value"]
            return
        if self._firmware is not None and tag == self._firmware[0]:
            self._firmware[1] += 1
        if ident == _FIRMWARE_ID and self.firmware is None and self._firmware is None:
            self._firmware = [tag, 1, []]
        if tag in ("td", "th", "tr", "table"):
            self._end_cell()
        if tag == "option":
            self._end_option()
            if self._select:
                self._option = [attrs.get("value", ""), []]
        elif tag == "select":
            self._select = ident == "meterform_select_meter" or attrs.get("name") == "mid"
        elif tag == "table":
            self._tables.append(ident)
        elif tag == "tr" and self._tables:
            self._end_row()
            self._row = {} if self._tables[-1] == "metervalue" else []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = [ident if tag == "td" else None, []]

    def end(self, tag):
        if self._firmware is not None and tag == self._firmware[0]:
            self._firmware[1] -= 1
            if not self._firmware[1]:
                self.firmware = text(b"".join(self._firmware[2])) or None
                self._firmware = None
        if tag in ("td", "th", "tr", "table"):
            self._end_cell()
        if tag in ("tr", "table"):
            self._end_row()
        if tag == "table" and self._tables:
            self._tables.pop()
        elif tag in ("option", "select"):
            self._end_option()
            if tag == "select":
                self._select = False

    def text(self, data):
        for kept in (self._cell, self._option, self._firmware):
            if kept is not None:
                kept[-1].append(bytes(data))

    # --

    def _end_cell(self):
        cell, self._cell = self._cell, None
        if cell is None or self._row is None:
            return
        if isinstance(self._row, dict):
            if cell[0] and cell[0].startswith(_CELL):
                self._row[cell[0][len(_CELL):]] = text(b"".join(cell[1]))
        elif cell[0] is not None:
            self._row.append(text(b"".join(cell[1])))

    def _end_row(self):
        row, self._row = self._row, None
        if isinstance(row, dict):
            if row.get("obis"):
                self.value_rows += 1
                if self.on_row is not None:
                    self.on_row(row)
        elif row is not None and self.plain_rows is not None and len(self.plain_rows) < 64:
            self.plain_rows.append(row)

    def _end_option(self):
        option, self._option = self._option, None
        if option is not None:
            self.options.append((option[0], text(b"".join(option[1]))))


class Rows:
    """A meter's value rows -> its Batch: the time a pair's second row inherits, the rows the
    gateway marks not valid (skipped, with a note), exact values. With `emit` (daily mode) each
    capture time's Reading goes out as soon as the next time begins: a page's rows of one time
    stand together, so a day's page is never held (it comes newest first)."""

    def __init__(self, meter, batch, clock, note, emit=None):
        self.meter, self.batch, self.clock, self.note = meter, batch, clock, note
        self.emit = emit
        self.stamp, self.valid = None, True

    def add(self, row):
        meter = self.meter
        obis = row["obis"].strip()
        if row.get("timestamp") and self.emit is not None:
            for reading in self.batch.readings():
                self.emit(reading)
        if row.get("timestamp"):
            try:
                self.stamp = self.clock.iso(row["timestamp"])
            except ValueError as e:
                raise GatewayError("format", "meter %s: %s" % (meter, e))
            self.valid = row.get("istvalide", "1") in ("", "1")
        if self.stamp is None:
            raise GatewayError("format", "meter %s: a value row before any timestamp" % meter)
        if row.get("istvalide"):
            self.valid = row["istvalide"] == "1"
        if not self.valid:
            self.note("info", "meter %s: the gateway marks %s at %s as not valid; skipped" % (
                meter, obis, self.stamp))
            return
        try:
            value = decimal(row.get("wert", ""))
        except ValueError as e:
            raise GatewayError("format", "meter %s, %s at %s: %s" % (meter, obis, self.stamp, e))
        self.batch.add(self.stamp, obis, value, row.get("einheit") or _unit(obis))


def _unit(obis):
    """Rows without a unit cell: energy registers are kWh on these pages."""
    unit = obis_unit(obis)
    return "kWh" if unit == "Wh" else unit


def _format(error):
    return error if isinstance(error, GatewayError) else GatewayError("format", str(error))


def meter_id(option_text):
    """'01005e318002.1lgz0072999211.sm' -> '1lgz0072999211' (the meter's own id)."""
    label = option_text.strip()
    if label.endswith(".sm"):
        label = label[:-3]
    return label.rsplit(".", 1)[-1]


def _quiet(level, message):
    pass


class Ppc:
    name = "ppc"
    manufacturer = "Power Plus Communications"
    model = "PPC Smart Meter Gateway"
    force_md5 = False
    silent_on_bad_login = False

    def __init__(self, where, user, path="", gateway_id="", note=None, clock=None,
                 limit=None):   # (pages are read as they come: no limit to keep)
        self.where, self.user = where, user
        self.path = path or PATH
        self.note = note or _quiet
        self.clock = clock or CentralEurope()
        self.token = None

    def probe(self):
        return Request("GET", self.path, "the probe GET " + self.path, auth=False)

    def cycle(self, mode, since, emit, now=None):
        """The cycle generator: log in, read every meter (daily: yesterday's values as of `now`,
        epoch s or a function giving it when it is needed), log out; emit(Reading) per meter and
        capture time (daily: as the page has them, newest first); returns the firmware text."""
        firmware = yield from self._login()
        try:
            page = yield from self._post("meterform", "the meter list")
            meters = [(mid, meter_id(label)) for mid, label in page.options
                      if mid and meter_id(label)]
            if not meters:
                raise GatewayError("format", "the meter list of %s has no meters (no options in "
                                   "#meterform_select_meter): is this a PPC gateway, and may this "
                                   "user read a meter?" % self.where)
            if firmware is None:
                firmware = page.firmware or (yield from self._versions())
            page = None
            for mid, meter in meters:
                batch = Batch(meter, mode, since.get(meter))
                rows = Rows(meter, batch, self.clock, self.note,
                            emit if mode == "daily" else None)
                if mode == "daily":
                    page = yield from self._day(mid, rows.add, now)
                else:
                    page = yield from self._post("showMeterProfile", "the meter values of %s"
                                                 % mid, (("mid", mid),), rows.add)
                if not page.value_rows:
                    raise GatewayError("format", "the values page of meter %s has no "
                                       "table#metervalue rows with an OBIS code" % mid)
                page = rows = None
                for reading in batch.readings():
                    emit(reading)
        finally:
            yield from self._logout()
        return firmware

    def _login(self):
        path = self.path
        page = yield Request("GET", path, "the login (GET %s)" % path, answer=Page(), login=True)
        page.check()
        self.token = page.token()
        if self.token is None:
            raise GatewayError("session", "the gateway at %s sent a page without a session "
                               "(no form token%s): another session is probably open — a browser, "
                               "TRuDI or a second reader — or the HAN login is locked after too "
                               "many logins; log out there, or wait (up to 15 minutes) before "
                               "the next try" % (self.where,
                                                 "" if page.cookies else ", no session cookie"))
        cookies = list(page.cookies)
        if "session" not in cookies:
            self.note("warning", "the gateway at %s set no session cookie%s; going on with the "
                      "form token alone" % (self.where, " (it set %s)" % ", ".join(cookies)
                                            if cookies else ""))
        elif cookies.count("session") > 1:
            self.note("info", "the gateway set %d session cookies; the session keeps them all"
                      % cookies.count("session"))
        return page.firmware

    def _post(self, action, what, fields=(), on_row=None, plain_rows=False):
        body = form((("tkn", self.token), ("action", action)) + tuple(fields))
        page = yield Request("POST", self.path, "%s (action=%s)" % (what, action), body, (FORM,),
                             Page(on_row, plain_rows))
        self.token = page.token() or self.token
        page.check()
        return page

    def _versions(self):
        page = yield from self._post("swversions", "the firmware versions", plain_rows=True)
        versions = [row[1] for row in page.plain_rows if len(row) == 3 and row[1]]
        return "-".join(versions) or page.firmware or None

    def _day(self, mid, on_row, now):
        """Yesterday's 15-minute values, 00:00 to today's 00:15 in the gateway's time."""
        form_page = yield from self._post("showMeterValuesForm", "the values form of %s" % mid,
                                          (("mid", mid),))
        if callable(now):
            now = now()
        elif now is None:
            from time import time
            now = int(time())
        today = self.clock.today(now)
        start = civil_date(epoch_seconds(today + "T12:00:00") - 86400)
        page = yield from self._post("showMeterValues", "yesterday's values of %s" % mid, (
            ("mid", form_page.inputs.get("mid") or mid), ("from", "%s 00:00:00" % start),
            ("to", "%s 00:15:00" % today)), on_row)
        return page

    def _logout(self):
        if self.token is None:
            return
        try:
            yield from self._post("logout", "the logout")
        except GatewayError as e:   # the session times out on its own; the next login says so
            self.note("warning", "logging out of %s failed: %s" % (self.where, e.message))
        self.token = None


FAMILY = Ppc
