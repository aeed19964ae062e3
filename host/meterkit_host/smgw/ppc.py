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
are the gateway's local time without an offset (the gateway's time zone, Europe/Berlin by default).
Some gateways set no `session` cookie, or several: the token then carries the session.
"""
import datetime
import logging
from html.parser import HTMLParser

from .values import GatewayError, Snapshot, decimal, local_iso, obis_unit, readings_by_time

log = logging.getLogger("meterkit.smgw")

PATH = "/cgi-bin/hanservice.cgi"
_CELL = "table_metervalues_col_"


class PageParser(HTMLParser):
    """The few things the PPC pages hold: inputs, the meter select, texts by id, table rows.
    Forgiving: a tag left open is closed by the end of its parent, as browsers do."""

    def __init__(self):
        HTMLParser.__init__(self, convert_charrefs=True)
        self.inputs = []            # (name, value)
        self.options = []           # (value, text) of the meter select
        self.texts = {}             # id -> text of elements with an id (first one wins)
        self.rows = []              # table#metervalue rows: {cell id suffix: text}
        self.plain_rows = []        # rows of other tables: [cell texts] (swversions)
        self._open = []             # [tag, id, text parts] of the elements whose text we want
        self._select = False
        self._tables = []           # ids of the open tables
        self._row = None

    def handle_starttag(self, tag, attrs):
        attrs = dict((k, v or "") for k, v in attrs)
        ident = attrs.get("id", "")
        if tag == "input":
            self.inputs.append((attrs.get("name", ""), attrs.get("value", "")))
            return
        if tag in ("td", "th", "tr", "option"):
            self._close(tag)         # <td>a<td>b: the first cell ends where the next begins
        if tag == "select":
            self._select = ident == "meterform_select_meter" or attrs.get("name") == "mid"
        elif tag == "table":
            self._tables.append(ident)
        elif tag == "tr" and self._tables:
            self._end_row()
            self._row = {} if self._tables[-1] == "metervalue" else []
        if ident or tag in ("td", "option"):
            self._open.append([tag, ident, [], attrs.get("value", "")])

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag != "input":
            self.handle_endtag(tag)

    def handle_data(self, data):
        for entry in self._open:
            entry[2].append(data)

    def handle_endtag(self, tag):
        if tag in ("tr", "table", "select"):
            self._close("td")
            self._close("option")
        self._close(tag, end=True)
        if tag in ("tr", "table"):
            self._end_row()
        if tag == "table" and self._tables:
            self._tables.pop()
        elif tag == "select":
            self._select = False

    def _end_row(self):
        if self._row is not None:
            (self.rows if isinstance(self._row, dict) else self.plain_rows).append(self._row)
            self._row = None

    def _close(self, tag, end=False):
        """Finish the innermost open `tag` element (and whatever was left open inside it)."""
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i][0] == tag:
                for entry in reversed(self._open[i:]):
                    self._finish(*entry)
                del self._open[i:]
                return
            if not end:
                return   # only the element on top may be implicitly closed

    def _finish(self, tag, ident, parts, value):
        text = " ".join("".join(parts).split())
        if ident:
            self.texts.setdefault(ident, text)
        if tag == "option" and self._select:
            self.options.append((value, text))
        elif tag == "td" and isinstance(self._row, dict) and ident.startswith(_CELL):
            self._row[ident[len(_CELL):]] = text
        elif tag == "td" and isinstance(self._row, list):
            self._row.append(text)

    def close(self):
        HTMLParser.close(self)
        self._close("td", end=True)   # a page cut short keeps the cells and the row it had
        self._end_row()

    def token(self):
        return self.hidden("tkn")

    def hidden(self, name):
        for key, value in self.inputs:
            if key == name and value:
                return value
        return None


def parse(text):
    parser = PageParser()
    parser.feed(text)
    parser.close()
    return parser


def meter_id(option_text):
    """'01005e318002.1lgz0072999211.sm' -> '1lgz0072999211' (the meter's own id)."""
    text = option_text.strip()
    if text.endswith(".sm"):
        text = text[:-3]
    return text.rsplit(".", 1)[-1]


class Ppc:
    name = "ppc"
    manufacturer = "Power Plus Communications"
    model = "PPC Smart Meter Gateway"
    force_md5 = False

    def __init__(self, http, spec, zone):
        self.http, self.spec, self.zone = http, spec, zone
        self.path = http.path or PATH
        self.token = None
        self.fw_hint = None   # a firmware text some gateways print on the meter list

    @staticmethod
    def probe_request(http, spec):
        return "GET", http.path or PATH, {}

    def read(self, mode, since):
        firmware = self._login()
        try:
            meters = self._meters()
            if firmware is None:
                firmware = self._firmware()
            readings = []
            for mid, meter in meters:
                rows = self._daily_rows(mid) if mode == "daily" else self._profile_rows(mid)
                readings += self._readings(meter, rows, mode, since.get(meter))
            return Snapshot(firmware, None, readings)
        finally:
            self._logout()

    # -- the session ---------------------------------------------------------------------------

    def _login(self):
        self.http.session.cookies.clear()   # a stale session cookie would be refused
        page = self.http.request("GET", self.path, "the login (GET %s)" % self.path)
        parsed = parse(page.text)
        self.token = parsed.token()
        if self.token is None:
            raise GatewayError("session", "the gateway at %s sent a page without a session "
                               "(no form token%s): another session is probably open — a browser, "
                               "TRuDI or a second reader — or the HAN login is locked after too "
                               "many logins; log out there, or wait (up to 15 minutes) before "
                               "the next try" % (self.http.where,
                                                 "" if page.cookies else ", no session cookie"))
        if "session" not in page.cookies:
            log.warning("%s: the gateway at %s set no session cookie%s; going on with the form "
                        "token alone", self.spec["name"], self.http.where,
                        " (it set %s)" % ", ".join(page.cookies) if page.cookies else "")
        elif page.cookies.count("session") > 1:
            log.info("%s: the gateway set %d session cookies; the session keeps them all",
                     self.spec["name"], page.cookies.count("session"))
        return parsed.texts.get("div_fwversion") or None

    def _post(self, action, what, **fields):
        data = dict(fields, tkn=self.token, action=action)
        page = self.http.request("POST", self.path, "%s (action=%s)" % (what, action), data=data)
        parsed = parse(page.text)
        self.token = parsed.token() or self.token
        return parsed

    def _logout(self):
        if self.token is None:
            return
        try:
            self._post("logout", "the logout")
        except GatewayError as e:   # the session times out on its own; the next login says so
            log.warning("%s: logging out of %s failed: %s", self.spec["name"], self.http.where,
                        e.message)
        self.token = None

    # -- pages -----------------------------------------------------------------------------------

    def _meters(self):
        page = self._post("meterform", "the meter list")
        meters = [(mid, meter_id(text)) for mid, text in page.options if mid and meter_id(text)]
        if not meters:
            raise GatewayError("format", "the meter list of %s has no meters (no options in "
                               "#meterform_select_meter): is this a PPC gateway, and may this "
                               "user read a meter?" % self.http.where)
        self.fw_hint = page.texts.get("div_fwversion")
        return meters

    def _firmware(self):
        if self.fw_hint:
            return self.fw_hint
        page = self._post("swversions", "the firmware versions")
        versions = [row[1] for row in page.plain_rows if len(row) == 3 and row[1]]
        return "-".join(versions) or page.texts.get("div_fwversion") or None

    def _profile_rows(self, mid):
        page = self._post("showMeterProfile", "the meter values of %s" % mid, mid=mid)
        return self._table(page, mid)

    def _daily_rows(self, mid):
        form = self._post("showMeterValuesForm", "the values form of %s" % mid, mid=mid)
        values_mid = form.hidden("mid") or mid
        today = datetime.datetime.now(self.zone).date()
        start = today - datetime.timedelta(days=1)
        page = self._post("showMeterValues", "yesterday's values of %s" % mid, mid=values_mid,
                          **{"from": "%s 00:00:00" % start, "to": "%s 00:15:00" % today})
        return self._table(page, mid)

    def _table(self, page, mid):
        rows = [row for row in page.rows if row.get("obis")]
        if not rows:
            raise GatewayError("format", "the values page of meter %s has no table#metervalue "
                               "rows with an OBIS code" % mid)
        return rows

    def _readings(self, meter, rows, mode, last):
        """Rows -> one Reading per capture time, oldest first; in interval mode only the times
        after `last` (epoch), and on the first cycle only the newest."""
        by_time, stamp, valid = {}, None, True
        for row in rows:
            if row.get("timestamp"):
                try:
                    stamp = local_iso(row["timestamp"], self.zone)
                except ValueError as e:
                    raise GatewayError("format", "meter %s: %s" % (meter, e))
                valid = row.get("istvalide", "1") in ("", "1")
            if stamp is None:
                raise GatewayError("format", "meter %s: a value row before any timestamp" % meter)
            if row.get("istvalide"):
                valid = row["istvalide"] == "1"
            if not valid:
                log.info("%s: meter %s: the gateway marks %s at %s as not valid; skipped",
                         self.spec["name"], meter, row["obis"], stamp)
                continue
            try:
                value = decimal(row.get("wert", ""))
            except ValueError as e:
                raise GatewayError("format", "meter %s, %s at %s: %s" % (
                    meter, row["obis"], stamp, e))
            obis = row["obis"].strip()
            unit = row.get("einheit") or _unit(obis)
            by_time.setdefault(stamp, []).append((obis, value, unit))
        return readings_by_time(meter, by_time, mode, last)


def _unit(obis):
    """Rows without a unit cell: energy registers are kWh on these pages."""
    unit = obis_unit(obis)
    return "kWh" if unit == "Wh" else unit
