"""The Telegram sink of `meterkit read`: alerts through the Telegram Bot API, and /status.

    [telegram]
    token = "123456789:AA…"                  # the bot's token, from @BotFather
    chat_id = 123456789                      # who gets the alerts and may ask /status
    api_url = "https://api.telegram.org"     # or a local Bot API server
    power_above_w = 5000                     # a meter's power_in above this: an alert; 0: off
    silent_after_s = 300                     # no reading this long: "not answering"; 0: off
    daily_at = "00:00"                       # local time of the energy summary; "": off
    commands = true                          # answer /status (getUpdates long poll)

Alerts: a meter that stops answering (a Modbus meter its bus reports offline, any meter no
reading for silent_after_s) and when it is back; power_in above power_above_w (once, again after
it was at or below); at daily_at, the energy each meter took in and gave out since the summary
before (or since the start). /status lists every meter: power, energy, since the last summary,
last reading. Only the configured chat is answered.

Never in a meter's way: put() and diagnostics() note values under a lock and return. One thread
sends the messages in order, retrying a failing API (HTTP 5xx, 429 with its retry_after, timeouts,
no network) with backoff (1, 2, 4 … 30 s); beyond OUTBOX waiting messages the oldest go. Another
long-polls getUpdates. Values stay exact (Decimal from the meters' digits).
"""
import collections
import datetime
import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from decimal import Decimal

from dongle.config import text
from dongle.topics import device_id
from meterkit.harmonize import harmonize

from .sinks import BACKOFF_FIRST_S, BACKOFF_MAX_S

log = logging.getLogger("meterkit.read")
OUTBOX = 100     # messages waiting while the API is away; older ones are dropped beyond this
TICK_S = 1       # how often silence and the summary time are looked at
TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"


# -- config fields (hostconfig.py checks the [telegram] table with these) --------------------------

def bot_token(value):
    bot, _, secret = text(256)(value).partition(":")
    if not bot.isdigit() or len(secret) < 20 or [c for c in secret if c not in TOKEN_CHARS]:
        raise ValueError("must be the bot's token from @BotFather, like 123456789:AAF…")
    return value


def chat_id(value):
    if type(value) is int and value:
        return value
    if isinstance(value, str) and (value.lstrip("-").isdigit() or value[:1] == "@" and value[1:]):
        return value
    raise ValueError("must be a chat id (a number, e.g. 123456789) or a @channelname")


def http_url(value):
    if not text(512)(value).startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return value


def clock_time(value):
    """'' (off), 'HH:MM' or 'HH:MM:SS', local time."""
    parts = text(8)(value).split(":") if value else []
    if value and not (len(parts) in (2, 3) and all(len(p) == 2 and p.isdigit() for p in parts)
                      and int(parts[0]) < 24 and all(int(p) < 60 for p in parts[1:])):
        raise ValueError("must be a local time like 00:00 or 20:30 (HH:MM[:SS]), or empty for none")
    return value


def _number(low, high):
    def check(value):
        if type(value) is not int or not low <= value <= high:
            raise ValueError("must be a whole number %d..%d" % (low, high))
        return value
    return check


def _boolean(value):
    if type(value) is not bool:
        raise ValueError("must be true or false")
    return value


FIELDS = (
    ("token", None, bot_token),
    ("chat_id", None, chat_id),
    ("api_url", "https://api.telegram.org", http_url),
    ("power_above_w", 0, _number(0, 10 ** 9)),
    ("silent_after_s", 300, _number(0, 7 * 86400)),
    ("daily_at", "00:00", clock_time),
    ("commands", True, _boolean),
    ("poll_s", 25, _number(1, 50)),        # getUpdates' long-poll timeout
    ("timeout_s", 10, _number(1, 120)),    # one HTTP request's
)


# -- the Bot API -----------------------------------------------------------------------------------

class ApiError(Exception):
    def __init__(self, message, status=None, retry_after=None):
        Exception.__init__(self, message)
        self.status, self.retry_after = status, retry_after

    @property
    def lasting(self):
        """The API refused this request (400 bad request, 401 token, 403 blocked): a retry of
        the same message cannot help. 429 (slow down) and 5xx can."""
        return self.status is not None and 400 <= self.status < 500 and self.status != 429


class BotApi:
    def __init__(self, base, token):
        self.url = base.rstrip("/") + "/bot" + token + "/"

    def call(self, method, params, timeout):
        """The result of one method call (JSON POST); ApiError says what went wrong, never the
        token (it is part of the URL)."""
        request = urllib.request.Request(self.url + method, data=json.dumps(params).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                doc = _json(response.read())
        except urllib.error.HTTPError as e:
            doc = _json(e.read())
            parameters = doc.get("parameters") if isinstance(doc.get("parameters"), dict) else {}
            retry_after = parameters.get("retry_after")
            raise ApiError("HTTP %d %s" % (e.code, doc.get("description") or e.reason), e.code,
                           retry_after if type(retry_after) is int and retry_after > 0 else None)
        except urllib.error.URLError as e:
            if isinstance(e.reason, socket.timeout):
                raise ApiError("no answer within %d s" % timeout)
            raise ApiError("no connection: %s" % (e.reason,))
        except socket.timeout:
            raise ApiError("no answer within %d s" % timeout)
        except (OSError, ValueError) as e:   # resets, a broken HTTP answer
            raise ApiError("%s: %s" % (type(e).__name__, e) if str(e) else type(e).__name__)
        if doc.get("ok") is not True:
            raise ApiError("the API said: %s" % (doc.get("description") or "not ok"))
        return doc.get("result")


def _json(data):
    try:
        doc = json.loads(data.decode())
    except (ValueError, UnicodeError):
        return {}
    return doc if isinstance(doc, dict) else {}


# -- what the sink knows about each meter ---------------------------------------------------------

class _Meter:
    def __init__(self, ident, now):
        self.id = ident
        self.seen = None           # time.time() of the last reading
        self.since = now           # the watch started: silence counts from here
        self.down = None           # why it is not answering, while it is not
        self.over = False          # power_in above the threshold
        self.values = {}           # power_in, power_out, energy_in, energy_out: Decimal
        self.base = {}             # energy_in, energy_out at the last summary


def _decimal_text(number):
    return format(number.normalize(), "f") if number else "0"


class TelegramSink:
    name = "telegram"

    def __init__(self, settings):
        self.s = settings
        self.api = BotApi(settings["api_url"], settings["token"])
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.closing = threading.Event()
        self.outbox = collections.deque()     # [text] items, oldest first
        self.meters = {}                      # id -> _Meter, in the order they appeared
        self.stats = {"sent": 0, "retries": 0, "dropped": 0, "commands": 0}
        now = time.time()
        self.summary_from = now
        self.next_summary = self._summary_after(now)
        self.sender = threading.Thread(target=self._send_loop, name="sink-telegram", daemon=True)
        self.poller = threading.Thread(target=self._poll_loop, name="sink-telegram-commands",
                                       daemon=True)

    def start(self):
        self.sender.start()
        if self.s["commands"]:
            self.poller.start()

    def stop(self, timeout):
        """Send what waits (for up to `timeout` s), then end."""
        self.closing.set()
        self.wake.set()
        self.sender.join(timeout)
        if self.outbox:
            log.warning("telegram: %d messages not sent at shutdown", len(self.outbox))

    # -- from the meters (their threads: note and return) ------------------------------------------

    def put(self, source, reading, received):
        values = dict((name, Decimal(str(value))) for name, value in harmonize(reading)
                      if name in ("power_in", "power_out", "energy_in", "energy_out"))
        with self.lock:
            meter = self._meter(device_id(reading))
            meter.seen = time.time()
            if meter.down is not None:
                self._back(meter)
            meter.values.update(values)
            for name in ("energy_in", "energy_out"):
                if name in values and name not in meter.base:
                    meter.base[name] = values[name]
            self._power(meter, values.get("power_in"))

    def diagnostics(self, device, stats):
        online = stats.get("online")   # Modbus meters: the bus says whether it answers
        if online is None:
            return
        with self.lock:
            meter = self._meter(device)
            if online is False and meter.down is None:
                self._went_down(meter, stats.get("last_error") or "no answer")
            elif online is True and meter.down is not None:
                self._back(meter)

    def _meter(self, ident):
        if ident not in self.meters:
            self.meters[ident] = _Meter(ident, time.time())
        return self.meters[ident]

    def _went_down(self, meter, why):
        meter.down = why
        self._say("⚠️ %s is not answering: %s" % (meter.id, why))

    def _back(self, meter):
        meter.down = None
        self._say("✅ %s is answering again" % meter.id)

    def _power(self, meter, power):
        limit = self.s["power_above_w"]
        if power is None or not limit:
            return
        if power > limit and not meter.over:
            self._say("⚡ %s: power %s W, above %d W" % (meter.id, _decimal_text(power), limit))
        meter.over = power > limit

    def _say(self, message):
        """Queue a message (the lock is held)."""
        if len(self.outbox) >= OUTBOX:
            self.outbox.popleft()
            self.stats["dropped"] += 1
            if self.stats["dropped"] == 1 or self.stats["dropped"] % 100 == 0:
                log.warning("telegram: %d messages dropped so far (the API is away)",
                            self.stats["dropped"])
        self.outbox.append([message])
        self.wake.set()

    # -- the clock: silence and the daily summary --------------------------------------------------

    def _summary_after(self, now):
        if not self.s["daily_at"]:
            return None
        hour, minute, second = (self.s["daily_at"] + ":00").split(":")[:3]
        at = datetime.datetime.fromtimestamp(now).replace(
            hour=int(hour), minute=int(minute), second=int(second), microsecond=0)
        if at.timestamp() <= now:
            at += datetime.timedelta(days=1)
        return at.timestamp()

    def _tick(self, now):
        with self.lock:
            limit = self.s["silent_after_s"]
            for meter in self.meters.values():
                last = meter.seen or meter.since
                if limit and meter.down is None and now - last > limit:
                    self._went_down(meter, "no reading for %d s" % (now - last))
            if self.next_summary is not None and now >= self.next_summary:
                self._say(self._summary(now))
                self.next_summary = self._summary_after(now)

    def _summary(self, now):
        lines = ["📊 Energy from %s to %s" % (_when(self.summary_from), _when(now))]
        for meter in self.meters.values():
            lines.append("%s: %s" % (meter.id, self._energy(meter) or "no energy counter"))
            for name in ("energy_in", "energy_out"):
                if name in meter.values:
                    meter.base[name] = meter.values[name]
        self.summary_from = now
        return "\n".join(lines if self.meters else lines + ["no meter has sent anything"])

    @staticmethod
    def _energy(meter):
        """'4.5 kWh in, 0 kWh out' since the last summary."""
        return ", ".join("%s kWh %s" % (_decimal_text(meter.values[name] - meter.base[name]), way)
                         for name, way in (("energy_in", "in"), ("energy_out", "out"))
                         if name in meter.values)

    def _status(self, now):
        lines = ["meterkit: %d meter%s" % (len(self.meters), "" if len(self.meters) == 1 else "s")]
        for meter in self.meters.values():
            if meter.down is not None:
                lines.append("%s: not answering (%s)" % (meter.id, meter.down))
                continue
            v = meter.values
            power = ", ".join("%s W %s" % (_decimal_text(v[name]), way) for name, way in
                              (("power_in", "in"), ("power_out", "out")) if name in v)
            parts = [power] if power else []
            if "energy_in" in v:
                parts.append("%s kWh" % _decimal_text(v["energy_in"]))
            energy = self._energy(meter)
            if energy:
                parts.append("since %s: %s" % (_when(self.summary_from), energy))
            if meter.seen is not None:
                parts.append("last reading %d s ago" % max(0, now - meter.seen))
            lines.append("%s: %s" % (meter.id, "; ".join(parts) or "no values yet"))
        return "\n".join(lines)

    # -- sending -----------------------------------------------------------------------------------

    def _send_loop(self):
        backoff = BACKOFF_FIRST_S
        while True:
            self._tick(time.time())
            with self.lock:
                item = self.outbox[0] if self.outbox else None
            if item is None:
                if self.closing.is_set():
                    return
                self.wake.wait(TICK_S)
                self.wake.clear()
                continue
            try:
                self.api.call("sendMessage", {"chat_id": self.s["chat_id"], "text": item[0]},
                              self.s["timeout_s"])
            except ApiError as e:
                if e.lasting:
                    log.error("telegram: the API refused a message (%s); dropped", e)
                    self._done(item)
                    continue
                wait = e.retry_after or backoff
                self.stats["retries"] += 1
                log.warning("telegram: cannot send (%s); retrying in %d s", e, wait)
                if self.closing.wait(wait):
                    return
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            self._done(item)
            self.stats["sent"] += 1
            backoff = BACKOFF_FIRST_S

    def _done(self, item):
        with self.lock:
            if self.outbox and self.outbox[0] is item:   # (unless it was dropped meanwhile)
                self.outbox.popleft()

    # -- commands ----------------------------------------------------------------------------------

    def _poll_loop(self):
        offset, backoff = None, BACKOFF_FIRST_S
        while not self.closing.is_set():
            params = {"timeout": self.s["poll_s"], "allowed_updates": ["message"]}
            if offset is not None:
                params["offset"] = offset
            try:
                updates = self.api.call("getUpdates", params,
                                        self.s["poll_s"] + self.s["timeout_s"])
            except ApiError as e:
                log.warning("telegram: cannot fetch commands (%s); retrying in %d s", e, backoff)
                if self.closing.wait(backoff):
                    return
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            backoff = BACKOFF_FIRST_S
            for update in updates if isinstance(updates, list) else []:
                if isinstance(update, dict) and type(update.get("update_id")) is int:
                    offset = max(offset or 0, update["update_id"] + 1)
                    self._command(update.get("message"))

    def _command(self, message):
        if not isinstance(message, dict) or not isinstance(message.get("chat"), dict):
            return
        words = message.get("text").split() if isinstance(message.get("text"), str) else []
        if not words or words[0][:1] != "/":
            return
        if str(message["chat"].get("id")) != str(self.s["chat_id"]):
            log.info("telegram: a command from chat %s ignored (not the configured chat)",
                     message["chat"].get("id"))
            return
        self.stats["commands"] += 1
        with self.lock:
            if words[0].split("@")[0] == "/status":
                self._say(self._status(time.time()))
            else:
                self._say("I know /status")


def _when(epoch):
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(epoch))
