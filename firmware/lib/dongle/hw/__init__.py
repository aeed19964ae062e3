"""The hardware layer, chosen once by sys.platform: ESP32 or the unix port.

Both modules offer the same names, and nothing outside this folder knows which one runs:

    NAME                         "esp32" | "unix"
    data_dir(argv) -> str        folder for config.json and the spool
    board_roots(data) -> [str]   folders that hold boards/<name>/board.json
    MeterPort(board, line, source)   async readinto(buf) -> n (0 at the end of a finite
                                     source), set_line(line), close()
    Wifi(ssid, password)         async keep_up(), connected, rssi(), configure(ssid, password),
                                 scan() -> [(ssid, rssi, secure)], async try_connect(ssid, pw)
    AccessPoint()                up(essid), down(), active, ip       (the setup portal's AP)
    Button(board, data)          pressed()            (held LONG_PRESS_S: factory reset)
    reset()                      reboot (unix: nothing; app.main restarts the App in-process)
    WEB_ROOT, DNS_PORT           where the pages live; the captive DNS port
    Watchdog(timeout_ms)         feed()
    Led(board)                   set(on)
    free_heap() -> int, unique_id() -> str
"""
import sys

# The spool holds >= 10 minutes of 1 s DSMR5 telegrams on the ESP32: a real DSMR5 record is
# 300-1100 bytes (~700 on average over the telegrams in the test vectors; long hex ids and texts
# dominate) + 11 bytes of ring header, so 524288 / 760 = 689 records = 11.5 minutes (Smarty every
# 10 s: ~2 hours; M-Bus every 5 s: ~1 hour). 512 KB is a quarter of the stock ~2 MB LittleFS.
# RAM holds the few items the publisher is working through; more spill to the file. 4 items are
# ~3 KB of heap; a bigger RAM queue only fragments the heap while the broker is slow or away.
SPOOL_RAM_ITEMS = 4
SPOOL_FILE_BYTES = 524288


def on_esp32():
    """The ESP32 port; or the unix port told to play one (METERKIT_HW=esp32: the tests run
    hw/esp32.py there against stand-ins of machine, network and esp32)."""
    if sys.platform.startswith("esp32"):
        return True
    import os
    return os.getenv("METERKIT_HW") == "esp32"


def load():
    if on_esp32():
        from . import esp32 as hw
    else:
        from . import unix as hw
    return hw
