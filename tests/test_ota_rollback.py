"""Rollback, safe mode and power cuts on the MicroPython unix port.

A release whose code fails at boot goes back to the previous version by itself and says why; a
power cut (SIGKILL) at every step of an update leaves a dongle that boots the old or the new
version; boots that never get healthy end in safe mode, which still takes an update."""
import pytest

from ota_harness import Device, Serve, make_keys, make_release

BROKEN = 'raise RuntimeError("broken on purpose")\n'
STEPS = ("verified", "staged-one", "staged-all", "renamed", "state-tmp", "switched",
         "trial-healthy", "confirm-tmp")
SWITCHED = STEPS.index("switched")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ota-rollback")
    keys = make_keys(tmp)
    return {"tmp": tmp, "keys": keys, "good": make_release(tmp, keys, "0.2.0"),
            "broken": make_release(tmp, keys, "0.3.0", app_source=BROKEN)}


def test_release_failing_at_boot_is_rolled_back(world, tmp_path):
    dev = Device(tmp_path, world["keys"])
    with Serve(world["broken"]) as url:
        dev.start()
        try:
            dev.wait_for("web:")
            status, answer = dev.push(url)
            assert status == 200, answer
            dev.wait_for("boot: app 0.3.0 (trial)")
            dev.wait_for("boot: app 0.1.0 (normal)")            # back by itself
            dev.wait_for("web:")
            assert dev.running_version() == "0.1.0"
            status, doc = dev.request("GET", "/api/status", auth=False)
        finally:
            dev.stop()
    why = "0.3.0 rolled back: 0.3.0 failed at boot: RuntimeError: broken on purpose"
    assert doc["version"] == "0.1.0" and doc["ota"]["last_error"] == why
    state = dev.state()
    assert (state["active"], state["trial"], state["last_error"]) == ("0.1.0", None, why)


def test_trial_that_never_gets_healthy_is_rolled_back(world, tmp_path):
    """The new version starts, but decodes nothing (the meter source is gone) within trial_s."""
    dev = Device(tmp_path, world["keys"], trial_s=10)
    with Serve(world["good"]) as url:
        dev.start()
        try:
            dev.wait_for("web:")
            (tmp_path / "meter.txt").unlink()   # the next boot finds no meter data
            assert dev.push(url)[0] == 200
            dev.wait_for("boot: app 0.2.0 (trial)")
            dev.wait_for("ota: 0.2.0 rolled back", timeout=40)
            dev.wait_for("boot: app 0.1.0 (normal)")
        finally:
            dev.stop()
    state = dev.state()
    assert state["active"] == "0.1.0" and state["trial"] is None
    assert state["last_error"].startswith("0.2.0 rolled back: not healthy within 10 s: "
                                          "no meter reading decoded")


@pytest.mark.parametrize("step", STEPS)
def test_power_cut_at_every_step_boots_old_or_new(world, tmp_path, step):
    dev = Device(tmp_path, world["keys"])
    with Serve(world["good"]) as url:
        dev.start(kill_at=step)
        dev.wait_for("web:")
        try:
            dev.push(url)
        except OSError:
            pass   # the process died under the request
        assert dev.wait_exit() == -9
        assert "ota: power cut at %s" % step in dev.lines
        dev.start()                                           # power back on
        try:
            dev.wait_for("web:")
            version = dev.running_version()
            expected = "0.1.0" if STEPS.index(step) < SWITCHED else "0.2.0"
            assert version == expected, dev.lines[-10:]
            if version == "0.1.0":                            # and it still updates
                status, answer = dev.push(url)
                assert status == 200, answer
                dev.wait_for("boot: app 0.2.0 (trial)")
            dev.wait_for("ota: 0.2.0 is healthy")
        finally:
            dev.stop()
    state = dev.state()
    assert (state["active"], state["previous"], state["trial"]) == ("0.2.0", "0.1.0", None)
    assert sorted(p.name for p in (dev.root / "apps").iterdir()) == ["0.1.0", "0.2.0"]


def test_boot_loop_ends_in_safe_mode_which_still_updates(world, tmp_path):
    dev = Device(tmp_path, world["keys"])
    broken = dev.root / "apps/0.1.0/lib/dongle/app.mpy"
    good = broken.read_bytes()
    broken.write_bytes(b"")                                  # the active app cannot start
    for boot in range(1, 6):
        dev.start()
        assert dev.wait_exit() != 0
        assert dev.state()["boots"] == boot
        assert "failed at boot" in dev.state()["last_error"]
    dev.start()
    try:
        dev.wait_for("boot: app 0.1.0 (safe)")
        dev.wait_for("safe mode: web on port")
        status, doc = dev.request("GET", "/api/status", auth=False)
        assert doc["mode"] == "safe" and "failed at boot" in doc["ota"]["last_error"]
        assert dev.request("POST", "/api/ota/push", {"url": "http://x/"}, auth=False)[0] == 401
        with Serve(world["good"]) as url:
            status, answer = dev.push(url)
            assert status == 200, answer
            dev.wait_for("boot: app 0.2.0 (trial)")
            assert dev.running_version() == "0.2.0"
            dev.wait_for("ota: 0.2.0 is healthy")
    finally:
        dev.stop()
    assert dev.state()["boots"] == 0 and dev.state()["active"] == "0.2.0"
    assert good   # (the broken 0.1.0 stays as the previous version, untouched by the update)
