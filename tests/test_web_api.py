"""The dongle's JSON API against the real firmware on the MicroPython unix port: auth on every
[auth] route, no stored secret in any response, config validation and saving, live values from
the simulated meter, the key test with the core's diagnostics."""
import base64
import json
import time

import pytest

from conftest import runtime_options
from web_harness import (ADMIN, SMARTY_KEY, Meter, call, call_json, login, running)

MASK = "********"
AUTH_ROUTES = (("GET", "/api/live"), ("GET", "/api/history?range=hour"), ("GET", "/api/config"),
               ("POST", "/api/config"), ("GET", "/api/wifi/scan"), ("POST", "/api/test/wifi"),
               ("POST", "/api/test/mqtt"), ("POST", "/api/test/keys"), ("GET", "/api/backup"),
               ("POST", "/api/restore"), ("POST", "/api/factory-reset"), ("POST", "/api/reboot"),
               ("GET", "/api/modbus/models"), ("POST", "/api/test/modbus"))
SECRETS = {"wifi": {"ssid": "home", "password": "wifi-secret-42"},
           "mqtt": {"host": "127.0.0.1", "user": "u", "password": "mqtt-secret-43"},
           "meter": {"key": SMARTY_KEY, "auth_key": "00112233445566778899AABBCCDDEEF1",
                     "profile": "smarty"},
           "admin": {"password": ADMIN}}
OPEN_GETS = ("/api/status", "/", "/live", "/setup", "/status", "/settings", "/app.js",
             "/generate_204", "/nothing-here")


def configured(**extra):
    config = json.loads(json.dumps(SECRETS))
    config["mqtt"]["host"] = ""     # no broker in these tests
    config.update(extra)
    return config


def wait_until(condition, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not met within %d s" % timeout)


@pytest.mark.parametrize("runtime", ["wheel", "unix64-frozen"])   # the pages from the app tree
def test_every_auth_route_refuses_without_the_password_and_nothing_leaks(tmp_path, runtime):
    meter = Meter("smarty", key=SMARTY_KEY, auth_key=SECRETS["meter"]["auth_key"], seed=2)
    with running(tmp_path, configured(), meter, **runtime_options(runtime)) as fw:
        port = fw.http_port
        for method, path in AUTH_ROUTES:
            body = {} if method == "POST" else None
            status, answer = call_json(port, method, path, body)
            assert status == 401, (path, status)
            assert "log in" in answer["error"]
        wrong = {"Authorization": "Basic " + base64.b64encode(b"admin:nope-nope").decode()}
        assert call(port, "GET", "/api/config", headers=wrong)[0] == 401
        assert call(port, "GET", "/api/config", headers={"Cookie": "mk_session=forged"})[0] == 401
        assert call_json(port, "POST", "/api/login", {"password": "wrong"})[0] == 401

        cookie = login(port)
        basic = {"Authorization": "Basic " + base64.b64encode(("admin:" + ADMIN).encode()).decode()}
        wait_until(lambda: call_json(port, "GET", "/api/live", headers=cookie)[1]["meter_id"])
        seen = []
        for path in ("/api/live", "/api/history?range=hour", "/api/history?range=day",
                     "/api/history?range=month", "/api/config", "/api/wifi/scan", "/api/status"):
            for headers in (cookie, basic):
                status, _, data = call(port, "GET", path, headers=headers)
                assert status == 200, path
                seen.append(data)
        for path, body in (("/api/test/keys", {"key": MASK, "auth_key": MASK}),
                           ("/api/test/wifi", {"ssid": "home", "password": MASK}),
                           ("/api/test/mqtt", {"host": "127.0.0.1", "port": 1, "password": MASK}),
                           ("/api/config", {"wifi": {"password": "short"}})):
            status, _, data = call(port, "POST", path, body, cookie)
            seen.append(data)
        for path in OPEN_GETS:
            status, _, data = call(port, "GET", path)
            assert status == (404 if path == "/nothing-here" else 200) or \
                path == "/generate_204", (path, status)   # the pages, wherever the app is
            seen.append(data)
        secrets = ("wifi-secret-42", "mqtt-secret-43", SMARTY_KEY, SMARTY_KEY.lower(),
                   "00112233445566778899AABBCCDDEEF1", ADMIN, "sha256$")
        for data in seen:
            for secret in secrets:
                assert secret.encode() not in data, (secret, data[:200])
        view = json.loads(call(port, "GET", "/api/config", headers=cookie)[2])
        assert view["wifi"]["password"] == MASK and view["meter"]["key"] == MASK
        assert view["admin"]["password"] == MASK and view["mqtt"]["user"] == "u"
        backup = call(port, "GET", "/api/backup", headers=cookie)
        assert b"wifi-secret-42" in backup[2] and b"attachment" in backup[1][
            "content-disposition"].encode()

        status, headers, _ = call(port, "POST", "/api/logout", {}, cookie)
        assert status == 200 and "Max-Age=0" in headers["set-cookie"]
        assert call(port, "GET", "/api/config", headers=cookie)[0] == 401


def test_login_cookie_flags(tmp_path):
    with running(tmp_path, configured()) as fw:
        status, headers, _ = call(fw.http_port, "POST", "/api/login", {"password": ADMIN})
        cookie = headers["set-cookie"]
        assert status == 200 and cookie.startswith("mk_session=")
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie


def test_key_diagnostics_on_the_last_captured_frame(tmp_path):
    auth_key = "000102030405060708090A0B0C0D0E0F"
    meter = Meter("smarty", key=SMARTY_KEY, auth_key=auth_key, seed=4)
    config = configured()
    config["meter"].update(key=SMARTY_KEY, auth_key=auth_key)
    with running(tmp_path, config, meter) as fw:
        port, cookie = fw.http_port, login(fw.http_port)
        wait_until(lambda: call_json(port, "GET", "/api/status")[1]["decoder"]["ok"] >= 2)

        def keys(key, ak):
            status, answer = call_json(port, "POST", "/api/test/keys",
                                       {"key": key, "auth_key": ak}, cookie)
            assert status == 200
            return answer

        right = keys(SMARTY_KEY, auth_key)
        assert right["ok"] and right["message"] == "the keys decode the last frame"
        assert keys(MASK, MASK)["ok"]                       # the stored keys
        wrong_ek = keys("00" * 16, auth_key)
        assert not wrong_ek["ok"] and wrong_ek["message"] == "the encryption key is wrong"
        wrong_ak = keys(SMARTY_KEY, "11" * 16)
        assert not wrong_ak["ok"] and wrong_ak["message"] == "the authentication key is wrong"
        status, answer = call_json(port, "POST", "/api/test/keys", {"key": "xyz"}, cookie)
        assert status == 400 and "32 hex digits" in answer["error"]


def test_no_tag_and_no_frame_yet(tmp_path):
    meter = Meter("evn", key=SMARTY_KEY, seed=5)    # encrypted, no authentication tag
    config = {"meter": {"profile": "mbus_dlms", "key": SMARTY_KEY}}
    with running(tmp_path, config, meter) as fw:
        port = fw.http_port                            # no admin password yet: setup, open
        wait_until(lambda: call_json(port, "GET", "/api/status")[1]["decoder"]["ok"] >= 1)
        answer = call_json(port, "POST", "/api/test/keys",
                           {"key": SMARTY_KEY, "auth_key": "22" * 16})[1]
        assert answer["ok"] and answer["message"] == "this meter sends no tag"
    (tmp_path / "silent").mkdir()
    with running(tmp_path / "silent", {}, Meter("dsmr5"), count=0) as fw:
        answer = call_json(fw.http_port, "POST", "/api/test/keys", {"key": SMARTY_KEY})[1]
        assert answer == {"ok": False, "message": "no frame captured yet", "detail": ""}


def test_live_status_and_history_show_the_simulated_meter(tmp_path):
    with running(tmp_path, {"admin": {"password": ADMIN}}, Meter("dsmr5", seed=6)) as fw:
        port, cookie = fw.http_port, login(fw.http_port)
        live = wait_until(lambda: call_json(port, "GET", "/api/live", headers=cookie)[1]
                          if call_json(port, "GET", "/api/status")[1]["decoder"]["ok"] >= 3
                          else None)
        assert isinstance(live["harmonized"]["power_in"], (int, float))
        assert live["values"]["1-0:1.8.1"]["unit"] == "kWh"
        status = call_json(port, "GET", "/api/status")[1]
        assert status["mode"] == "normal" and status["meter"]["id"] == live["meter_id"]
        # the equipment id as people read it; the values keep the meter's hex
        hex_id = live["values"]["0-0:96.1.1"]["value"]
        assert live["meter_id"] == bytes.fromhex(hex_id).decode() and live["meter_id"][0] == "E"
        assert set(status) >= {"version", "uptime_s", "heap_free", "wifi", "mqtt", "decoder"}
        history = call_json(port, "GET", "/api/history?range=hour", headers=cookie)[1]
        assert history["range"] == "hour" and history["points"][-1][0] > 1.6e9
        assert call_json(port, "GET", "/api/history?range=year", headers=cookie)[0] == 400
        scan = call_json(port, "GET", "/api/wifi/scan", headers=cookie)[1]
        assert scan["networks"][0]["ssid"] and "secure" in scan["networks"][0]


def test_config_validation_masks_and_saving(tmp_path):
    with running(tmp_path, configured()) as fw:
        port, cookie = fw.http_port, login(fw.http_port)
        status, answer = call_json(port, "POST", "/api/config",
                                   {"mqtt": {"port": 0, "base_topic": "a/#"},
                                    "meter": {"key": "12"}}, cookie)
        assert status == 400
        assert set(answer["errors"]) >= {"mqtt.port", "mqtt.base_topic", "meter.key"}
        assert answer["errors"]["mqtt.port"] == "must be 1..65535"
        for body, why in ((b"{not json", "not valid JSON"), (b"[1, 2]", "JSON object"),
                          (b"\xff\xfe", "not valid JSON")):
            status, answer = call_json(port, "POST", "/api/config", body,
                                       dict(cookie, **{"Content-Type": "application/json"}))
            assert status == 400 and why in answer["error"]
        status, answer = call_json(port, "POST", "/api/config", "a=1&b",
                                   dict(cookie, **{"Content-Type":
                                                   "application/x-www-form-urlencoded"}))
        assert status == 400 and "'b' has no value" in answer["error"]
        status, answer = call_json(port, "POST", "/api/config",
                                   {"mqtt": {"user": "new-user"}, "wifi": {"password": MASK}},
                                   cookie)
        assert status == 200 and answer == {"ok": True, "restart": True}
        stored = json.loads((fw.directory / "config.json").read_text())
        assert stored["mqtt"]["user"] == "new-user"
        assert stored["wifi"]["password"] == "wifi-secret-42"       # MASK kept the secret
        assert stored["admin"]["password"].startswith("sha256$")    # never in clear
        assert ADMIN not in (fw.directory / "config.json").read_text()
        fw.wait_for("restarting", 20)
        fw.wait_for("web: ", 20)
        cookie = login(port)
        view = call_json(port, "GET", "/api/config", headers=cookie)[1]
        assert view["mqtt"]["user"] == "new-user"
