"""The Telegram sink against a stand-in Bot API on 127.0.0.1 (telegram_standin.py): the real
`meterkit read` polls a simulated SDM630 (slave 1) and SDM120 (slave 2) on a pseudo-terminal and
alerts through the stand-in (power above the threshold, a meter that stops answering and comes
back, the daily energy summary) and answers /status; a failing API (HTTP 500, 429, timeouts) is
retried with backoff while the readings keep flowing to stdout."""
import datetime
import json
import re
import time

import pytest

from telegram_standin import BotApiStandIn
from test_read import Process

from meterkit.exact import Exact
from meterkit.modbus import regmap
from meterkit.reading import Reading
from meterkit_host import hostconfig
from meterkit_host.simulate_modbus import BusSim, PtyBus, Slave
from meterkit_host.telegram_sink import TelegramSink

TOKEN = "123456:TEST-token_abcdefghijkl"
CHAT = 42


def _config(tmp_path, pty, api, **telegram):
    fields = dict(token=TOKEN, chat_id=CHAT, api_url=api.url, power_above_w=800,
                  silent_after_s=0, daily_at="", poll_s=1, timeout_s=1)
    fields.update(telegram)
    path = tmp_path / "read.toml"
    path.write_text("""stdout = true
[[sources]]
name = "bus"
port = "%s"
profile = "modbus"
timeout_ms = 100
retry_s = 1
[[sources.meters]]
model = "sdm630"
slave = 1
[[sources.meters]]
model = "sdm120"
slave = 2
[sources.intervals]
power = 1
energy = 1
[telegram]
%s
""" % (pty, "\n".join("%s = %s" % (k, json.dumps(v)) for k, v in fields.items())))
    return path


class Meters:
    """An SDM630 (872.35 W) and an SDM120 (100 W) on a pty, and `meterkit read` on it."""

    def __init__(self, tmp_path, api, **telegram):
        self.sdm630 = Slave(regmap.load("sdm630"), 1)
        self.sdm120 = Slave(regmap.load("sdm120"), 2, {"power_in": "100"})
        self.pty = PtyBus(BusSim([self.sdm630, self.sdm120]))
        self.read = Process("read", "--config", str(_config(tmp_path, self.pty.path, api,
                                                            **telegram)))

    def readings(self, timeout=20):
        """The next stdout line, as JSON."""
        return json.loads(self.read.line(timeout))

    def until(self, condition, timeout=30):
        """Read stdout until a reading satisfies condition."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reading = self.readings()
            if condition(reading):
                return reading
        raise AssertionError("no such reading within %d s" % timeout)

    def close(self):
        """Stop `meterkit read` as systemd does; its exit code."""
        code = self.read.stop()
        self.pty.close()
        return code


def value(reading, code):
    found = reading["values"].get(code)
    return found and found["value"]


def test_alerts_and_status(tmp_path):
    with BotApiStandIn(TOKEN) as api:
        meters = Meters(tmp_path, api)
        try:
            assert api.wait_for(lambda: api.texts("⚡")) == [
                "⚡ sdm630-1: power 872.35 W, above 800 W"]
            assert all(m["chat_id"] == CHAT for m in api.sent)
            meters.until(lambda r: r["meter_id"] == "sdm630-1" and value(r, "1-0:1.7.0"))
            meters.until(lambda r: r["meter_id"] == "sdm630-1" and value(r, "1-0:1.7.0"))
            assert len(api.texts("⚡")) == 1              # above all along: said once

            api.add_update(99, "/status")                  # not the configured chat: ignored
            api.add_update(CHAT, "/status@meterkit_bot")
            status = api.wait_for(lambda: api.texts("meterkit: 2 meters"))
            assert len(status) == 1
            lines = status[0].split("\n")
            assert lines[1].startswith("sdm630-1: 872.35 W in, 0 W out; 12345.67 kWh; since ")
            assert lines[1].endswith(" s ago") and "0 kWh in, 0 kWh out" in lines[1]
            assert lines[2].startswith("sdm120-2: 100 W in, 0 W out; 12345.67 kWh")
            api.wait_for(lambda: max(api.offsets) == 3)    # both updates acknowledged

            meters.sdm630.set("energy_in", "12350.17")
            meters.until(lambda r: value(r, "1-0:1.8.0") == 12350.17)
            api.add_update(CHAT, "/status")
            later = api.wait_for(lambda: api.texts("meterkit: 2 meters")[1:])[0]
            assert re.search(r"sdm630-1: .*; since [0-9: -]+: 4\.5 kWh in, 0 kWh out;", later)
            api.add_update(CHAT, "/help")
            api.wait_for(lambda: api.texts("I know /status"))

            meters.sdm630.set("power_in", "500")           # below, then above again: said again
            meters.until(lambda r: value(r, "1-0:1.7.0") == 500)
            meters.sdm630.set("power_in", "900.5")
            api.wait_for(lambda: len(api.texts("⚡")) == 2)
            assert api.texts("⚡")[1] == "⚡ sdm630-1: power 900.5 W, above 800 W"
            assert not [t for t in api.texts("⚡") if "sdm120" in t]

            meters.sdm120.on = False
            down = api.wait_for(lambda: api.texts("not answering"))
            assert down == ["⚠️ sdm120-2 is not answering: sdm120-2 (slave 2): no answer "
                            "within %s ms" % down[0].rsplit(" ", 2)[-2]]
            meters.sdm120.on = True
            assert api.wait_for(lambda: api.texts("answering again")) == [
                "✅ sdm120-2 is answering again"]
        finally:
            code = meters.close()
        assert code == 0


def test_daily_summary_at_its_time(tmp_path):
    at = (datetime.datetime.now() + datetime.timedelta(seconds=4)).strftime("%H:%M:%S")
    with BotApiStandIn(TOKEN) as api:
        meters = Meters(tmp_path, api, daily_at=at, power_above_w=0)
        try:
            summary = api.wait_for(lambda: api.texts("📊"))[0].split("\n")
            assert re.match(r"📊 Energy from \d{4}-\d\d-\d\d \d\d:\d\d to \d{4}-\d\d-\d\d "
                            r"\d\d:\d\d$", summary[0])
            assert sorted(summary[1:]) == ["sdm120-2: 0 kWh in, 0 kWh out",
                                           "sdm630-1: 0 kWh in, 0 kWh out"]
            meters.sdm630.set("energy_out", "240")       # counted from the summary on
            meters.until(lambda r: value(r, "1-0:2.8.0") == 240)
            api.add_update(CHAT, "/status")
            status = api.wait_for(lambda: api.texts("meterkit: 2 meters"))[0]
            assert "since %s: 0 kWh in, 5.5 kWh out" % summary[0][-16:] in status
            assert not api.texts("⚡")                    # power_above_w = 0: off
        finally:
            meters.close()


def test_failing_api_is_retried_while_readings_flow(tmp_path):
    with BotApiStandIn(TOKEN) as api:
        api.failing = "500"
        meters = Meters(tmp_path, api)
        try:
            api.wait_for(lambda: len([a for a in api.attempts if a == ("sendMessage", "500")]) >= 3)
            failing_since = int(time.time())                  # readings go on meanwhile:
            for meter in ("sdm630-1", "sdm120-2"):            # made after three failed sends
                meters.until(lambda r: r["meter_id"] == meter and r["received"] >= failing_since)
            waits = [int(w) for w in re.findall(r"telegram: cannot send \(HTTP 500 Internal Server "
                                                r"Error\); retrying in (\d+) s", "\n".join(
                                                    meters.read.wait_err("cannot send", 3)))]
            assert waits[:3] == [1, 2, 4]                     # backoff
            meters.read.wait_err("cannot fetch commands (HTTP 500")
            api.failing = "hang"                              # longer than timeout_s
            meters.read.wait_err("cannot send (no answer within 1 s)", timeout=40)
            hanging_since = int(time.time())
            meters.until(lambda r: r["received"] >= hanging_since)   # still flowing
            assert api.sent == []
            api.failing = "429"
            meters.read.wait_err("cannot send (HTTP 429 Too Many Requests: retry after 1); "
                                 "retrying in 1 s", timeout=40)
            api.failing = None
            assert api.wait_for(lambda: api.texts("⚡"), 40) == [
                "⚡ sdm630-1: power 872.35 W, above 800 W"]  # once, though tried many times
            api.add_update(CHAT, "/status")
            api.wait_for(lambda: api.texts("meterkit: 2 meters"), 40)
        finally:
            meters.close()


def test_silence_alert_for_any_meter_and_a_lasting_refusal(tmp_path):
    with BotApiStandIn(TOKEN) as api:
        sink = TelegramSink(dict(token=TOKEN, chat_id=CHAT, api_url=api.url + "/", power_above_w=0,
                                 silent_after_s=1, daily_at="", commands=True, poll_s=1,
                                 timeout_s=2))
        for odd in ({}, {"message": "no"}, {"message": {"chat": 42, "text": "/status"}},
                    {"message": {"chat": {"id": CHAT}, "text": 5}}):
            api.add_update(CHAT, "", odd)                   # skipped, and acknowledged
        sink.start()
        reading = Reading("house")
        reading.add("1-0:1.7.0", Exact(1234, -3), "kW")
        sink.put("p1", reading, int(time.time()))
        alerts = api.wait_for(lambda: api.texts("not answering"), 10)
        # how long the silence had lasted when the sink looked depends on the machine's load
        assert len(alerts) == 1 and re.fullmatch(
            "⚠️ house is not answering: no reading for ([0-9]+) s", alerts[0]), alerts
        assert int(alerts[0].split()[-2]) >= 1   # silent_after_s
        sink.put("p1", reading, int(time.time()))
        api.wait_for(lambda: api.texts("answering again"), 10)
        api.add_update(CHAT, "/status")
        assert "house: 1234 W in" in api.wait_for(lambda: api.texts("meterkit: 1 meter"), 10)[0]
        api.wait_for(lambda: max(api.offsets) == 6, 10)       # the update acknowledged
        assert len(api.texts("meterkit: 1 meter")) == 1
        sink.s["chat_id"] = 7                               # a chat the API refuses for good
        api.add_update(7, "/status")
        api.wait_for(lambda: ("sendMessage", "400") in api.attempts, 10)
        api.add_update(7, "/status")                        # the next message still goes out
        api.wait_for(lambda: api.attempts.count(("sendMessage", "400")) == 2, 10)
        sink.stop(10)
        assert not sink.sender.is_alive() and not sink.outbox and sink.stats["retries"] == 0


def test_config_fields_are_checked():
    base = {"sources": [{"port": "/dev/x", "profile": "dsmr5"}]}

    def problems(telegram):
        with pytest.raises(hostconfig.ConfigError) as caught:
            hostconfig.validate(dict(base, telegram=telegram))
        return caught.value.problems
    config = hostconfig.validate(dict(base, telegram={"token": TOKEN, "chat_id": CHAT}))
    telegram = config["telegram"]
    assert telegram["api_url"] == "https://api.telegram.org" and telegram["daily_at"] == "00:00"
    assert telegram["silent_after_s"] == 300 and telegram["power_above_w"] == 0
    assert problems({"token": "nope", "chat_id": True, "api_url": "ftp://x", "daily_at": "25:00",
                     "power_above_w": -1, "tokn": 1}) == [
        "telegram.tokn: unknown field (known: token, chat_id, api_url, power_above_w, "
        "silent_after_s, daily_at, commands, poll_s, timeout_s)",
        "telegram.token: must be the bot's token from @BotFather, like 123456789:AAF…",
        "telegram.chat_id: must be a chat id (a number, e.g. 123456789) or a @channelname",
        "telegram.api_url: must be an http:// or https:// URL",
        "telegram.power_above_w: must be a whole number 0..1000000000",
        "telegram.daily_at: must be a local time like 00:00 or 20:30 (HH:MM[:SS]), or empty "
        "for none"]
    assert problems({"chat_id": "@news"}) == ["telegram.token: missing"]
    config = hostconfig.validate(dict(base, telegram={"token": TOKEN, "chat_id": "@news",
                                                      "daily_at": ""}))
    assert config["telegram"]["chat_id"] == "@news" and config["telegram"]["daily_at"] == ""
