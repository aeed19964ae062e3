"""The dongle's pages in a real headless Chromium, against the real firmware on the MicroPython
unix port, fed by the simulated meter, publishing to a real mosquitto.

Screenshots of every page land in tests/artifacts/ (gitignored) for a person to look at.
"""
import contextlib
import gzip
import json
import sys
import threading
import time
import urllib.request
from decimal import Decimal

from broker import Broker, wait_for_port
from browser import Browser
from conftest import CORE, ROOT
from firmware_harness import Firmware, Meter, MeterLine, Subscriber
from selenium.webdriver.support.ui import Select

sys.path.insert(0, str(ROOT / "tools"))
import build_www  # noqa: E402

sys.path.insert(0, str(CORE))
from dongle.web.auth import check_password  # noqa: E402

WWW = ROOT / "firmware" / "www"
ADMIN = "correct horse battery"
WIFI_PASSWORD = "swordfish-2024"
SMARTY_KEY = "5AD84121D9D20B364B7A11F3C1B5827F"
WRONG_KEY = "00112233445566778899AABBCCDDEEFF"
MASK = "********"


# -- helpers ---------------------------------------------------------------------------------------

class Line(MeterLine):
    """The simulated meter as a UART sees it: always there. The newest connection gets the pushes,
    so a firmware that restarts in-process (after saving its setup) reads on where it left off."""
    client = None

    def _play(self):
        threading.Thread(target=self._accept, daemon=True).start()
        while len(self.expected) < self.count:
            client = self.client
            if client is None:
                time.sleep(0.05)
                continue
            data, expected = self.meter.next()
            try:
                client.sendall(data)
            except OSError:
                self.client = None if self.client is client else self.client
                continue
            self.expected.append(expected)
            time.sleep(self.interval)
        self.sent.set()

    def _accept(self):
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            previous, self.client = self.client, client
            if previous is not None:
                previous.close()


@contextlib.contextmanager
def dongle(tmp_path, config, meter, broker_port=None, interval=0.5, count=2000):
    """The firmware running (not stopping when the meter does), a meter line feeding it."""
    line = Line(meter, count=count, interval=interval)
    firmware = Firmware(tmp_path, config, broker_port, line.port)
    firmware.argv.remove("--exit-at-end")
    firmware.start()
    try:
        wait_for_port(firmware.http_port, timeout=30)
        yield firmware, line
    finally:
        firmware.stop()
        print("\n".join(output(firmware)[-40:]))   # shown when the test fails


def output(firmware):
    """Everything the firmware printed so far."""
    while not firmware.queue.empty():
        line = firmware.queue.get()
        if line is not None:
            firmware.lines.append(line)
    return firmware.lines


def base(firmware):
    return "http://127.0.0.1:%d" % firmware.http_port


def get_json(firmware, path):
    with urllib.request.urlopen(base(firmware) + path, timeout=10) as response:
        return json.loads(response.read())


def stored_config(firmware):
    return json.loads((firmware.directory / "config.json").read_text())


def as_decimal(value):
    """An expected simulator value (Exact) as a Decimal, to compare with what a page shows."""
    return Decimal(value.mantissa).scaleb(value.exponent)


# What the live page shows for each DSMR 5 line: element id, the OBIS code, the power of ten from
# the meter's unit to the page's (kW -> W).
DSMR5_ON_PAGE = (
    ("power_in", "1-0:1.7.0", 3), ("power_out", "1-0:2.7.0", 3),
    ("energy_in_t1", "1-0:1.8.1", 0), ("energy_in_t2", "1-0:1.8.2", 0),
    ("energy_out_t1", "1-0:2.8.1", 0), ("energy_out_t2", "1-0:2.8.2", 0),
    ("voltage_l1", "1-0:32.7.0", 0), ("voltage_l2", "1-0:52.7.0", 0),
    ("voltage_l3", "1-0:72.7.0", 0), ("current_l1", "1-0:31.7.0", 0),
    ("current_l2", "1-0:51.7.0", 0), ("current_l3", "1-0:71.7.0", 0),
    ("power_in_l1", "1-0:21.7.0", 3), ("power_in_l2", "1-0:41.7.0", 3),
    ("power_in_l3", "1-0:61.7.0", 3), ("power_out_l1", "1-0:22.7.0", 3),
    ("power_out_l2", "1-0:42.7.0", 3), ("power_out_l3", "1-0:62.7.0", 3),
    ("gas", "0-1:24.2.1", 0),
)

SHOWN = """return Object.fromEntries(arguments[0].map((id) => {
    const node = document.getElementById(id); return [id, node ? node.textContent : null]; }))"""


def shown(browser, ids):
    """The text of several elements read at one instant: no poll can land between two reads."""
    return browser.driver.execute_script(SHOWN, list(ids))


UNLABELLED = """return [...document.querySelectorAll("input, select, textarea")]
    .filter((e) => e.type !== "hidden" && !e.labels.length).map((e) => e.outerHTML)"""


def check_page(browser, name):
    """Every control has a label, nothing is wider than the phone, no script error; screenshot."""
    assert browser.driver.execute_script(UNLABELLED) == [], name
    assert browser.page_width() <= 360, name
    errors = [m for m in browser.console() if "SEVERE" in m or "Uncaught" in m]
    assert not [m for m in errors if "favicon" not in m and "401" not in m], errors
    browser.screenshot(name)


# -- the pages as built for the device ----------------------------------------------------------------

def test_build_gzips_every_page_reproducibly(tmp_path):
    sizes = build_www.build(WWW, tmp_path / "a")
    names = sorted(name for name, _, _ in sizes)
    assert names == ["app.js", "config.js", "live.html", "settings.html", "setup.html",
                     "status.html", "style.css"]
    for name, raw, packed in sizes:
        data = gzip.decompress((tmp_path / "a" / (name + ".gz")).read_bytes())
        assert data == (WWW / name).read_bytes() and len(data) == raw and packed < raw
    assert sum(packed for _, _, packed in sizes) < 16 * 1024      # small enough for flash
    build_www.build(WWW, tmp_path / "b")
    for name in names:   # no timestamp in the gzip header: same pages, same bytes
        assert (tmp_path / "a" / (name + ".gz")).read_bytes() == \
            (tmp_path / "b" / (name + ".gz")).read_bytes()


def test_pages_need_nothing_from_the_internet():
    for path in WWW.iterdir():
        text = path.read_text()
        for reference in ('src="http', "src='http", 'href="http', "href='http", "url(http",
                          "//cdn", "@import"):
            assert reference not in text, (path.name, reference)
    for page in ("setup", "live", "status", "settings"):
        html = (WWW / (page + ".html")).read_text()
        assert 'name="viewport"' in html and 'data-page="%s"' % page in html
        assert '<script src="/app.js">' in html and 'href="/style.css"' in html


# -- the setup flow --------------------------------------------------------------------------------

def test_setup_flow_in_chromium_ends_in_normal_mode_with_the_new_config(tmp_path):
    meter = Meter("dsmr5", seed=3)
    with Broker(tmp_path) as broker, Subscriber(broker.port) as subscriber, \
            dongle(tmp_path, {"meter": {"profile": "auto"}}, meter) as (firmware, _), \
            Browser() as browser:
        assert get_json(firmware, "/api/status")["mode"] == "setup"
        browser.open(base(firmware) + "/")          # the portal's root is the setup page
        browser.wait_until(lambda: len(Select(browser.find("networks")).options) > 1,
                           "no scanned networks")
        Select(browser.find("networks")).select_by_value("meterkit-lab")
        assert browser.find("f-wifi-ssid").get_attribute("value") == "meterkit-lab"
        browser.fill("f-wifi-password", WIFI_PASSWORD)
        Select(browser.find("f-meter-profile")).select_by_value("dsmr5")
        browser.fill("f-mqtt-host", "127.0.0.1")
        browser.fill("f-mqtt-port", str(broker.port))
        browser.fill("f-mqtt-base_topic", "home/" + "x" * 130)    # too long: the dongle says so
        browser.fill("f-admin-password", ADMIN)
        browser.fill("f-admin-confirm", ADMIN + "!")
        browser.click("save")
        assert browser.wait_text("err-admin.confirm", "differ")   # checked in the page
        browser.fill("f-admin-confirm", ADMIN)
        browser.click("save")
        assert browser.wait_text("err-mqtt.base_topic", "at most 128 bytes")   # from the API
        assert browser.find("f-mqtt-base_topic").get_attribute("aria-invalid") == "true"
        assert "wifi" not in stored_config(firmware)                # nothing saved yet
        browser.fill("f-mqtt-base_topic", "home/meter")
        browser.find("config").find_element("css selector", "[data-test=mqtt]").click()
        assert browser.wait_text("test-mqtt", "connected to 127.0.0.1")
        check_page(browser, "setup")

        browser.click("save")
        browser.wait_for("to-live", timeout=60)
        check_page(browser, "setup-done")
        config = stored_config(firmware)
        assert config["wifi"]["ssid"] == "meterkit-lab"
        assert config["wifi"]["password"] == WIFI_PASSWORD
        assert config["meter"]["profile"] == "dsmr5"
        assert (config["mqtt"]["host"], config["mqtt"]["port"]) == ("127.0.0.1", broker.port)
        assert config["mqtt"]["base_topic"] == "home/meter"
        assert check_password(ADMIN, config["admin"]["password"])   # stored hashed
        status = get_json(firmware, "/api/status")
        assert status["mode"] == "normal" and status["meter"]["profile"] == "dsmr5"
        assert subscriber.wait_until(lambda: [t for t in subscriber.topics()
                                              if t.startswith("home/meter/")], 60)

        browser.click("to-live")                    # logged in by the setup page already
        browser.wait_until(lambda: browser.text("power_in") not in ("", "–"), "no live power")
        assert browser.driver.current_url.endswith("/live")
        settings_keep_masked_secrets(browser, firmware)
        backup_restore_and_reboot(browser, firmware, tmp_path)


def settings_keep_masked_secrets(browser, firmware):
    before = stored_config(firmware)
    browser.open(base(firmware) + "/settings")
    browser.wait_until(lambda: browser.find("f-wifi-ssid").get_attribute("value"), "no config")
    for secret in ("f-wifi-password", "f-admin-password", "f-admin-confirm"):
        assert browser.find(secret).get_attribute("value") == MASK
    assert WIFI_PASSWORD not in browser.driver.page_source
    check_page(browser, "settings")
    browser.fill("f-mqtt-discovery_prefix", "ha")
    browser.click("save")
    assert browser.wait_text("save-msg", "Saved")
    browser.wait_until(lambda: stored_config(firmware)["mqtt"]["discovery_prefix"] == "ha",
                       "the change was not saved")
    after = stored_config(firmware)
    assert after["wifi"]["password"] == WIFI_PASSWORD                # unchanged secrets kept
    assert after["admin"]["password"] == before["admin"]["password"]


# -- the live and status pages ------------------------------------------------------------------------

def test_live_page_shows_exactly_what_the_simulated_meter_sends(tmp_path):
    config = {"meter": {"profile": "dsmr5"}, "admin": {"password": ADMIN}}
    with dongle(tmp_path, config, Meter("dsmr5", seed=11)) as (firmware, line), \
            Browser() as browser:
        browser.open(base(firmware) + "/live")
        browser.wait_for("login-password")         # normal mode: the admin password first
        check_page(browser, "login")
        browser.fill("login-password", "not the password")
        browser.find("login").submit()
        assert browser.wait_text("login-error", "wrong password")
        browser.fill("login-password", ADMIN)
        browser.find("login").submit()
        browser.wait_until(lambda: browser.text("timestamp") not in ("", "–"), "no reading shown")

        ids = [name for name, _, _ in DSMR5_ON_PAGE] + ["timestamp", "meter_id"]
        for _ in range(3):     # three different telegrams, each shown exactly
            page = shown(browser, ids)
            pushes = [e for e in list(line.expected) if e["timestamp"] == page["timestamp"]]
            assert len(pushes) == 1, page["timestamp"]
            expected = pushes[0]
            for name, obis, power in DSMR5_ON_PAGE:
                value, _ = expected[obis]
                assert Decimal(page[name]) == as_decimal(value).scaleb(power), (name, page)
            assert page["meter_id"] not in ("", "–")
            browser.wait_until(lambda: browser.text("timestamp") != page["timestamp"],
                               "the page did not update itself")
        assert "1-0:1.8.1" in browser.driver.execute_script(
            "return document.getElementById('values').textContent")

        browser.wait_until(lambda: chart_has_a_line(browser), "no power line in the chart", 60)
        check_page(browser, "live")
        for button, title in (("day", "24 hours"), ("month", "31 days")):
            browser.driver.find_element("css selector", "[data-range=%s]" % button).click()
            assert browser.wait_text("chart-title", title)
            browser.screenshot("live-" + button)

        browser.open(base(firmware) + "/status")
        browser.wait_until(lambda: int(browser.text("s-decoder.ok")) > 0, "no decoded frames")
        assert browser.text("s-mode") == "normal"
        assert browser.text("s-meter.profile") == "dsmr5"
        assert browser.text("s-version") == get_json(firmware, "/api/status")["version"]
        check_page(browser, "status")


CHART_COLOURS = """const c = document.getElementById("chart"), g = c.getContext("2d");
    const d = g.getImageData(0, 0, c.width, c.height).data; let n = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i] > 150 && d[i + 1] < 110 && d[i + 2] < 60) n++;
    return n"""


def chart_has_a_line(browser):
    """Enough pixels in the power line's orange: the hour chart drew points from /api/history."""
    browser.driver.find_element("css selector", "[data-range=hour]").click()
    return browser.driver.execute_script(CHART_COLOURS) > 50


# -- key diagnostics in the setup page ----------------------------------------------------------------

def test_wrong_key_in_setup_shows_the_dongles_diagnostic(tmp_path):
    meter = Meter("smarty", key=SMARTY_KEY, seed=5)
    with dongle(tmp_path, {"meter": {"profile": "smarty"}}, meter) as (firmware, _), \
            Browser() as browser:
        browser.open(base(firmware) + "/setup")
        browser.wait_for("f-meter-key")
        browser.fill("f-meter-key", "0011")
        test_keys = browser.find("config").find_element("css selector", "[data-test=keys]")
        test_keys.click()
        assert browser.wait_text("test-keys", "32 hex digits")    # the API checks the key too
        browser.fill("f-meter-key", WRONG_KEY)

        def answer():
            test_keys.click()
            browser.wait_until(lambda: "Testing" not in browser.text("test-keys"), "no answer")
            text = browser.text("test-keys")
            return text if "no frame captured yet" not in text else None

        assert browser.wait_until(answer, "no frame captured", 60) == \
            "the encryption key is wrong"
        assert "fail" in browser.find("test-keys").get_attribute("class")
        check_page(browser, "setup-wrong-key")
        browser.fill("f-meter-key", SMARTY_KEY)
        test_keys.click()
        assert browser.wait_text("test-keys", "the keys decode the last frame")
        assert "ok" in browser.find("test-keys").get_attribute("class").split()


BACKUP = "fetch('/api/backup').then((r) => r.text()).then(arguments[0])"


def backup_restore_and_reboot(browser, firmware, tmp_path):
    backup = json.loads(browser.driver.execute_async_script(BACKUP))   # as the link downloads it
    assert backup["wifi"]["password"] == WIFI_PASSWORD                 # the one place with secrets
    backup["mqtt"]["base_topic"] = "restored/meter"
    path = tmp_path / "backup.json"
    path.write_text(json.dumps(backup))
    browser.find("restore-file").send_keys(str(path))
    browser.click("restore")
    assert browser.wait_text("restore-msg", "Restored")
    browser.wait_until(lambda: stored_config(firmware)["mqtt"]["base_topic"] == "restored/meter",
                       "the backup was not restored")
    assert stored_config(firmware)["wifi"]["password"] == WIFI_PASSWORD
    browser.wait_until(lambda: get_json(firmware, "/api/status"), "the dongle did not come back")
    browser.click("reboot")
    browser.driver.switch_to.alert.accept()        # "Reboot the dongle now?"
    if browser.wait_until(lambda: logged_out(browser) or browser.text("device-msg"), "no answer"):
        if logged_out(browser):                    # a restart may have ended the session
            browser.fill("login-password", ADMIN)
            browser.find("login").submit()
    assert browser.wait_text("device-msg", "Rebooting")
    browser.wait_until(lambda: "restarting" in output(firmware)[-20:], "no restart")


def logged_out(browser):
    return bool(browser.driver.find_elements("id", "login-password"))
