"""Boot into the dongle runtime (ESP32: runs after boot.py; unix: micropython firmware/main.py DIR)."""
import sys

if not sys.platform.startswith("esp32"):   # the unix port: the runtime lives next to this file
    here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
    sys.path.insert(0, here + "/lib")

from dongle.app import main  # noqa: E402

main()
