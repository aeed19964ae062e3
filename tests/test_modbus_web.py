"""The setup page's Modbus side against the real firmware on the MicroPython unix port, its meter
"UART" a TCP socket to the project's Modbus simulator (an SDM630 at slave 1, an SDM120 at 2):
the model list from the core's maps, and "test" reading one register over the bus, before the
profile is modbus (setup: the reader only listens) and while it runs (the bus polls meanwhile),
with every kind of failure named."""
import json
import threading

from web_harness import ADMIN, WebFirmware, call_json, login
from test_web_api import wait_until

from meterkit.modbus import regmap
from meterkit_host.simulate_modbus import BusSim, Slave, TcpBus


class Bus:
    """The simulated bus and the firmware reading it, stopped at the end."""

    def __init__(self, tmp_path, config):
        self.sdm630 = Slave(regmap.load("sdm630"), 1)
        self.sdm120 = Slave(regmap.load("sdm120"), 2, {"voltage_l1": "229.9", "power_in": "-100.5"})
        self.served = TcpBus(BusSim([self.sdm630, self.sdm120]))
        self.fw = WebFirmware(tmp_path, config, self.served.port)

    def __enter__(self):
        self.fw.start()
        return self

    def __exit__(self, *exc):
        self.fw.stop()
        self.served.close()
        while not self.fw.queue.empty():
            line = self.fw.queue.get()
            self.fw.lines.append(line or "")
        print("\n".join(self.fw.lines[-30:]))   # shown when the test fails


def ask(port, body, headers=None):
    status, answer = call_json(port, "POST", "/api/test/modbus", body, headers)
    assert status == 200, (status, answer)
    return answer


def test_models_come_from_the_core_maps(tmp_path):
    with Bus(tmp_path, {}) as bus:
        status, answer = call_json(bus.fw.http_port, "GET", "/api/modbus/models")
        assert status == 200
        models = dict((m["model"], m) for m in answer["models"])
        assert sorted(models) == sorted(regmap.MODELS)
        for model, shown in models.items():
            found = regmap.load(model)
            assert shown["name"] == "%s %s" % (found.maker, found.model)
            assert shown["line"] == found.line and shown["function"] == found.function
            assert shown["first"] == found.registers[0].name.split("/")[0]
        assert models["sdm630"]["name"] == "Eastron SDM630" and models["sdm120"]["line"] == "2400 8N1"
        assert models["abb_b23"]["first"] == "energy_in"


def test_setup_test_reads_one_register_and_names_each_failure(tmp_path):
    with Bus(tmp_path, {}) as bus:             # setup mode, profile auto: the P1 reader listens
        port = bus.fw.http_port
        right = ask(port, {"model": "sdm630", "slave": 1, "line": "19200 8E1"})
        assert right["ok"] and right["kind"] == "ok"
        assert (right["register"], right["value"], right["unit"]) == ("voltage_l1", 230.1, "V")
        assert right["message"] == "SDM630 slave 1 at 19200 8E1: voltage_l1 = 230.1 V"
        assert ask(port, {"model": "sdm120", "slave": "2", "register": "power_in"})["value"] == -100.5
        frequency = ask(port, {"model": "sdm630", "slave": 1, "register": "frequency"})
        assert frequency["message"].endswith("frequency = 49.98 Hz")
        assert "at 9600 8N1" in frequency["message"]           # empty line: the model's own

        silent = ask(port, {"model": "sdm630", "slave": 9})
        assert not silent["ok"] and silent["kind"] == "timeout"
        assert silent["message"].startswith("no answer from slave 9 at 9600 8N1 within ")
        assert "check the slave id" in silent["message"]
        refused = ask(port, {"model": "abb_b23", "slave": 2})    # holding registers of an SDM120
        assert refused["kind"] == "exception"
        assert "exception 1 (illegal function) to function 3" in refused["message"]
        assert refused["message"].endswith("is the meter a B23?")
        bus.sdm630.fault = "crc"
        crc = ask(port, {"model": "sdm630", "slave": 1})
        assert crc["kind"] == "crc" and "CRC error" in crc["message"]
        bus.sdm630.fault = "garble"                            # the function byte: the CRC fails
        assert ask(port, {"model": "sdm630", "slave": 1})["kind"] == "crc"
        bus.sdm630.fault = "short"
        short = ask(port, {"model": "sdm630", "slave": 1})
        assert short["kind"] == "format" and short["message"].startswith("short frame: 4 bytes")
        assert ask(port, {"model": "sdm630", "slave": 1})["value"] == 230.1   # fine again

        for body, why in (({"model": "sdm630", "slave": 0}, "slave must be 1..247"),
                          ({"model": "sdm630"}, "slave must be 1..247"),
                          ({"model": "sdm999", "slave": 1}, "model must be one of sdm630"),
                          ({"model": "sdm630", "slave": 1, "line": "19200 8X1"},
                           "line must be empty or like '19200 8E1'"),
                          ({"model": "sdm630", "slave": 1, "register": "nope"},
                           "SDM630 has no register 'nope'")):
            status, answer = call_json(port, "POST", "/api/test/modbus", body)
            assert status == 400 and answer["error"].startswith(why), (body, answer)
        status = call_json(port, "GET", "/api/status")[1]
        assert status["mode"] == "setup"


def test_test_waits_for_the_bus_while_profile_modbus_polls(tmp_path):
    meter = {"profile": "modbus", "modbus": "sdm630:1 sdm120:2", "line": "19200 8E1",
             "intervals": "voltage=1 current=1 power=1", "modbus_timeout_ms": 150}
    with Bus(tmp_path, {"meter": meter, "admin": {"password": ADMIN}}) as bus:
        port = bus.fw.http_port
        assert call_json(port, "POST", "/api/test/modbus", {"model": "sdm630", "slave": 1})[0] == 401
        cookie = login(port)
        wait_until(lambda: call_json(port, "GET", "/api/status")[1]["decoder"]["ok"] >= 5)
        answers = []

        def test_now(slave):
            answers.append(ask(port, {"model": "sdm630" if slave == 1 else "sdm120",
                                      "slave": slave, "line": "19200 8E1"}, cookie))
        # as many at once as the dongle serves connections (web/http.py MAX_CONNECTIONS: 4)
        threads = [threading.Thread(target=test_now, args=(1 + i % 2,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert len(answers) == 4 and all(a["ok"] for a in answers), answers
        assert sorted(a["value"] for a in answers) == [229.9] * 2 + [230.1] * 2
        assert "at 19200 8E1" in answers[0]["message"]
        assert ask(port, {"model": "sdm630", "slave": 7}, cookie)["kind"] == "timeout"
        before = call_json(port, "GET", "/api/status")[1]["decoder"]
        wait_until(lambda: call_json(port, "GET", "/api/status")[1]["decoder"]["ok"] > before["ok"])
        decoder = call_json(port, "GET", "/api/status")[1]["decoder"]
        assert decoder["crc"] == 0 and decoder["format"] == 0     # no two requests collided
        live = wait_until(lambda: call_json(port, "GET", "/api/live", headers=cookie)[1]["meter_id"])
        assert live in ("sdm630-1", "sdm120-2")         # and readings go on


def test_the_page_fields_are_validated_and_saved(tmp_path):
    with Bus(tmp_path, {"admin": {"password": ADMIN}}) as bus:
        port = bus.fw.http_port
        cookie = login(port)
        status, answer = call_json(port, "POST", "/api/config", {"meter": {
            "profile": "modbus", "modbus": "sdm630:1 sdm120:1", "line": "19200 8X1",
            "intervals": "voltage=0", "modbus_timeout_ms": 5}}, cookie)
        assert status == 400
        assert answer["errors"]["meter.modbus"] == "slave 1 is listed twice"
        assert answer["errors"]["meter.line"].startswith("must be empty or like '19200 8E1'")
        assert answer["errors"]["meter.intervals"].startswith("must be name=seconds")
        assert answer["errors"]["meter.modbus_timeout_ms"] == "must be 20..10000"
        status, answer = call_json(port, "POST", "/api/config", {"meter": {"profile": "modbus"}},
                                   cookie)
        assert answer["errors"]["meter.modbus"].startswith("the modbus profile needs its meters")
        status, answer = call_json(port, "POST", "/api/config", {"meter": {
            "profile": "modbus", "modbus": "sdm630:1 sdm120:2:wallbox", "line": "19200 8E1"}},
            cookie)
        assert status == 200, answer
        stored = json.loads((bus.fw.directory / "config.json").read_text())["meter"]
        assert (stored["modbus"], stored["line"]) == ("sdm630:1 sdm120:2:wallbox", "19200 8E1")
        bus.fw.wait_for("restarting", 20)
        bus.fw.wait_for("web: ", 20)
        cookie = login(port)
        wait_until(lambda: call_json(port, "GET", "/api/live", headers=cookie)[1]["meter_id"])
        assert ask(port, {"model": "sdm120", "slave": 2}, cookie)["ok"]


# -- the setup page in a real Chromium ----------------------------------------------------------------

def test_setup_page_picks_model_and_slave_and_tests_them_in_chromium(tmp_path):
    from browser import Browser
    from selenium.webdriver.support.ui import Select
    from test_web_browser import check_page, stored_config
    with Bus(tmp_path, {}) as bus, Browser() as browser:
        browser.open("http://127.0.0.1:%d/setup" % bus.fw.http_port)
        browser.wait_for("f-meter-key")
        assert not browser.find("modbus").is_displayed()
        Select(browser.find("f-meter-profile")).select_by_value("modbus")
        model = browser.wait_for("mb-model-0") and Select(browser.find("mb-model-0"))
        assert [o.get_attribute("value") for o in model.options] == list(regmap.MODELS)
        assert model.first_selected_option.text == "Eastron SDM630"
        assert Select(browser.find("mb-baud")).first_selected_option.text == \
            "The first meter's factory line (9600 8N1)"
        assert not browser.find("f-meter-key").is_displayed()        # no keys on a Modbus bus
        assert browser.find("mb-slave-0").get_attribute("value") == "1"
        Select(browser.find("mb-baud")).select_by_value("19200")
        Select(browser.find("mb-frame")).select_by_value("8E1")
        browser.click("mb-test-0")
        assert browser.wait_text("mb-result-0", "voltage_l1 = 230.1 V") == \
            "SDM630 slave 1 at 19200 8E1: voltage_l1 = 230.1 V"
        assert "ok" in browser.find("mb-result-0").get_attribute("class").split()
        browser.fill("mb-slave-0", "9")
        browser.click("mb-test-0")
        assert browser.wait_text("mb-result-0", "no answer from slave 9 at 19200 8E1")
        assert "fail" in browser.find("mb-result-0").get_attribute("class")
        browser.fill("mb-slave-0", "1")
        assert browser.text("mb-result-0") == ""                     # that answer was slave 9's

        browser.click("mb-add")
        assert browser.wait_for("mb-model-1")
        assert browser.find("mb-slave-1").get_attribute("value") == "2"
        Select(browser.find("mb-model-1")).select_by_value("abb_b23")
        browser.click("mb-test-1")                                   # an SDM120 is no B23
        assert browser.wait_text("mb-result-1", "exception 1 (illegal function)")
        Select(browser.find("mb-model-1")).select_by_value("sdm120")
        browser.fill("mb-id-1", "wall box")
        browser.fill("mb-slave-1", "1")
        browser.fill("f-admin-password", ADMIN)
        browser.fill("f-admin-confirm", ADMIN)
        browser.click("save")
        assert browser.wait_text("err-meter.modbus", "meter 2: the name may have letters")
        browser.fill("mb-id-1", "wallbox")
        browser.click("save")
        assert browser.wait_text("err-meter.modbus", "slave 1 is listed twice")
        browser.fill("mb-slave-1", "2")
        assert browser.text("err-meter.modbus") == ""
        browser.click("mb-test-1")
        assert browser.wait_text("mb-result-1", "SDM120 slave 2 at 19200 8E1: voltage_l1 = 229.9 V")
        check_page(browser, "setup-modbus")

        browser.click("save")
        browser.wait_for("to-live", timeout=60)
        meter = stored_config(bus.fw)["meter"]
        assert (meter["profile"], meter["modbus"], meter["line"]) == (
            "modbus", "sdm630:1 sdm120:2:wallbox", "19200 8E1")

        browser.open("http://127.0.0.1:%d/settings" % bus.fw.http_port)   # logged in by setup
        browser.wait_for("mb-model-1")
        assert Select(browser.find("mb-model-1")).first_selected_option.get_attribute("value") \
            == "sdm120"
        assert browser.find("mb-id-1").get_attribute("value") == "wallbox"
        assert Select(browser.find("mb-baud")).first_selected_option.get_attribute("value") == "19200"
        browser.click("mb-test-1")                   # now through the running bus's turns
        assert browser.wait_text("mb-result-1", "voltage_l1 = 229.9 V")
        check_page(browser, "settings-modbus")
