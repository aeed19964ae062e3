"""The settings page's "Install update" in headless Chromium: a signed release served by
`meterkit ota serve` is installed from the page, and the dongle comes back on the new version."""
from browser import Browser
from ota_harness import PASSWORD, Device, Serve, make_keys, make_release


def test_settings_page_installs_a_signed_release(tmp_path):
    keys = make_keys(tmp_path)
    release = make_release(tmp_path, keys, "0.2.0")
    foreign = make_release(tmp_path, make_keys(tmp_path, "other-keys"), "0.3.0")
    dev = Device(tmp_path, keys)
    with Serve(release) as url, Serve(foreign) as foreign_url, Browser() as browser:
        dev.start()
        try:
            dev.wait_for("web:")
            browser.open("http://127.0.0.1:%d/settings" % dev.port)
            browser.wait_for("login-password")
            browser.fill("login-password", PASSWORD)
            browser.find("login").submit()
            assert browser.wait_text("running-version", "0.1.0")

            browser.fill("update-url", foreign_url)      # signed, but not with this dongle's key
            browser.click("update")
            refusal = browser.wait_text("update-msg", "key")
            assert "fail" in browser.find("update-msg").get_attribute("class"), refusal

            browser.fill("update-url", url)
            browser.click("update")
            assert browser.wait_text("update-msg", "Version 0.2.0 installed", timeout=60)
            browser.screenshot("settings-update")
            assert dev.wait_for("boot: app 0.2.0 (trial)")
            dev.wait_for("ota: 0.2.0 is healthy")
        finally:
            dev.stop()
    assert dev.state()["active"] == "0.2.0"
