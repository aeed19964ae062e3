"""Setup mode: the state machine with made-up clocks (CPython and MicroPython), then the real
firmware: first boot in setup mode with captive redirects, save -> restart in normal mode,
factory reset by a long button press."""
import json
import sys
import time

from conftest import CORE, run_micropython
from web_harness import ADMIN, call, call_json, login, running

sys.path.insert(0, str(CORE))
from dongle.portal import LONG_PRESS_S, Setup  # noqa: E402

PROBES = ("/generate_204", "/hotspot-detect.html", "/connecttest.txt", "/ncsi.txt", "/fwlink",
          "/canonical.html", "/success.txt", "/library/test/success.html")


def run(setup, steps):
    """steps: (now, connected, pressed) -> the actions of each step, joined."""
    return [",".join(setup.step(now, connected, pressed)) for now, connected, pressed in steps]


def test_first_boot_keeps_the_ap_up_whatever_the_wifi_does():
    setup = Setup(configured=False, ssid="", ap_after_s=60)
    assert run(setup, [(0, False, False), (10, True, False), (999, False, False)]) == \
        ["ap_up", "", ""]
    assert setup.mode == "setup"


def test_unreachable_wifi_opens_the_ap_after_the_delay_and_closes_it_on_reconnect():
    setup = Setup(configured=True, ssid="home", ap_after_s=60)
    actions = run(setup, [(0, True, False), (10, False, False), (69, False, False),
                          (70, False, False), (80, False, False), (90, True, False)])
    assert actions == ["", "", "", "ap_up", "", "ap_down"]
    assert setup.mode == "normal"


def test_ap_timeout_closes_it_and_the_count_starts_over():
    setup = Setup(configured=True, ssid="home", ap_after_s=60, ap_timeout_s=100)
    actions = run(setup, [(0, False, False), (60, False, False), (160, False, False),
                          (219, False, False), (220, False, False)])
    assert actions == ["", "ap_up", "ap_down", "", "ap_up"]


def test_after_a_save_the_ap_stays_until_the_station_connects():
    setup = Setup(configured=True, ssid="home", ap_after_s=0, pending=True)
    assert run(setup, [(0, False, False), (500, False, False), (501, True, False),
                       (502, False, False)]) == ["ap_up", "", "ap_down", ""]


def test_no_ssid_or_zero_delay_never_opens_the_ap_for_wifi():
    for setup in (Setup(True, "", 60), Setup(True, "home", 0)):
        assert run(setup, [(0, False, False), (9999, False, False)]) == ["", ""]


def test_quiet_only_in_normal_mode_with_nothing_under_way():
    """What lets web.start() unload the portal: no AP, no marker, no timer running."""
    setup = Setup(configured=True, ssid="home", ap_after_s=60)
    quiet = []
    for now, connected, pressed in [(0, True, False), (1, False, False), (2, True, False),
                                    (3, True, True), (4, True, False)]:
        setup.step(now, connected, pressed)
        quiet.append(setup.quiet)
    assert quiet == [True, False, True, False, True]
    assert not Setup(configured=False, ssid="", ap_after_s=60).quiet
    pending = Setup(configured=True, ssid="home", ap_after_s=60, pending=True)
    assert not pending.quiet
    pending.step(0, True)
    assert pending.quiet


def test_a_long_press_is_one_factory_reset():
    setup = Setup(configured=True, ssid="home", ap_after_s=0)
    steps = [(0, True, True), (LONG_PRESS_S - 1, True, True), (LONG_PRESS_S, True, True),
             (LONG_PRESS_S + 5, True, True), (20, True, False), (21, True, True), (22, True, False)]
    assert run(setup, steps) == ["", "", "factory_reset", "", "", "", ""]


def test_the_state_machine_on_micropython():
    code = ("from dongle.portal import Setup\n"
            "s = Setup(True, 'home', 60, 100)\n"
            "for now, up in ((0, False), (60, False), (160, False), (220, False), (230, True)):\n"
            "    print(now, ','.join(s.step(now, up, False)) or '-', s.mode)\n")
    assert run_micropython(code).split("\n")[:5] == [
        "0 - normal", "60 ap_up setup", "160 ap_down normal", "220 ap_up setup",
        "230 ap_down normal"]


def test_first_boot_setup_save_then_normal_then_factory_reset(tmp_path):
    with running(tmp_path, {}) as fw:
        port = fw.http_port
        assert call_json(port, "GET", "/api/status")[1]["mode"] == "setup"
        for probe in PROBES + ("/some/page/on/another/host",):
            status, headers, _ = call(port, "GET", probe)
            assert status == 302 and headers["location"] == "http://127.0.0.1:%d/setup" % port
        assert call(port, "GET", "/api/config")[0] == 200        # open: no password yet
        status, answer = call_json(port, "POST", "/api/config", {"wifi": {"ssid": "home"}})
        assert status == 400 and "admin.password" in answer["errors"]
        status, answer = call_json(port, "POST", "/api/config",
                                   {"wifi": {"ssid": "home", "password": "swordfish-1"},
                                    "admin": {"password": ADMIN}})
        assert status == 200 and answer["restart"]
        marker = fw.directory / "ap_pending"    # keeps the AP up until the new Wi-Fi works
        assert marker.exists()
        fw.wait_for("restarting", 20)
        fw.wait_for("web: ", 20)
        assert call_json(port, "GET", "/api/status")[1]["mode"] == "normal"
        deadline = time.monotonic() + 10
        while marker.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not marker.exists()
        assert call(port, "GET", "/generate_204")[0] == 204
        assert call(port, "GET", "/api/config")[0] == 401
        assert call_json(port, "GET", "/api/config", headers=login(port))[1]["wifi"]["ssid"] == "home"

        (fw.directory / "button").write_text("held")          # the unix port's button
        fw.wait_for("portal: factory reset", 20)
        (fw.directory / "button").unlink()
        fw.wait_for("web: ", 20)
        stored = json.loads((fw.directory / "config.json").read_text())
        assert stored["admin"]["password"] == "" and stored["wifi"]["ssid"] == ""
        assert stored["http"]["port"] == port
        time.sleep(0.5)
        assert call_json(port, "GET", "/api/status")[1]["mode"] == "setup"
