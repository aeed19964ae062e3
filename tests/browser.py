"""A real headless Chromium for the web page tests, driven by selenium through /usr/bin/chromedriver.

    with Browser() as browser:
        browser.open("http://127.0.0.1:8080/setup")
        browser.fill("f-wifi-ssid", "home")
        browser.wait_text("test-keys", "wrong")
        browser.screenshot("setup")             # tests/artifacts/setup.png
"""
import base64
import pathlib
import shutil
import tempfile
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

ARTIFACTS = pathlib.Path(__file__).resolve().parent / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
# Running as root, Chromium needs --no-sandbox; the rest keeps it off the network: this machine
# refuses its background calls (updates, sync, QUIC).
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage")
PHONE = (360, 800)   # CSS pixels: the narrowest common phone screen


class Browser:
    def __init__(self, size=PHONE):
        self.size = size
        self.profile = tempfile.mkdtemp(prefix="meterkit-chromium-")
        self.driver = None

    def __enter__(self):
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in FLAGS + ("--user-data-dir=" + self.profile,):
            options.add_argument(flag)
        width, height = self.size   # a phone's screen, touch and all (a window can't be this narrow)
        options.add_experimental_option("mobileEmulation", {
            "deviceMetrics": {"width": width, "height": height, "pixelRatio": 1, "touch": True}})
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        self.driver.set_page_load_timeout(30)
        return self

    def __exit__(self, *exc):
        self.driver.quit()
        shutil.rmtree(self.profile, ignore_errors=True)

    def open(self, url):
        self.driver.get(url)

    def find(self, element_id):
        return self.driver.find_element(By.ID, element_id)

    def text(self, element_id):
        return self.find(element_id).text

    def fill(self, element_id, value):
        field = self.find(element_id)
        field.clear()
        field.send_keys(value)

    def click(self, element_id):
        self.find(element_id).click()

    def wait_until(self, condition, what, timeout=30):
        """condition() -> truthy value; returns it, or fails saying what did not happen."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                value = condition()
            except Exception:   # the element is not there yet, or the page is reloading
                value = None
            if value:
                return value
            time.sleep(0.1)
        self.screenshot("failed")
        raise AssertionError("%s within %d s; console: %s" % (what, timeout, self.console()))

    def wait_for(self, element_id, timeout=30):
        return self.wait_until(lambda: self.find(element_id).is_displayed(),
                               "no visible #%s" % element_id, timeout)

    def wait_text(self, element_id, fragment, timeout=30):
        """The element's text once it contains fragment."""
        return self.wait_until(lambda: fragment in self.text(element_id) and self.text(element_id),
                               "#%s never showed %r" % (element_id, fragment), timeout)

    def console(self):
        """The page's console messages (errors from app.js show here)."""
        return [entry["message"] for entry in self.driver.get_log("browser")]

    def page_width(self):
        """The page's scroll width in CSS pixels: wider than the window means sideways scrolling."""
        return self.driver.execute_script("return document.documentElement.scrollWidth")

    def screenshot(self, name):
        """The whole page (not only the window) as tests/artifacts/NAME.png."""
        ARTIFACTS.mkdir(exist_ok=True)
        width, height = self.driver.execute_script(
            "const e = document.documentElement; return [e.clientWidth, e.scrollHeight]")
        shot = self.driver.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}})
        path = ARTIFACTS / (name + ".png")
        path.write_bytes(base64.b64decode(shot["data"]))
        return path
