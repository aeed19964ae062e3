"""The hardware layer, chosen once by sys.platform: ESP32 or the unix port.

Both modules offer the same names, and nothing outside this folder knows which one runs:

    NAME                         "esp32" | "unix"
    data_dir(argv) -> str        folder for config.json and the spool
    board_roots(data) -> [str]   folders that hold boards/<name>/board.json
    SPOOL_RAM_ITEMS, SPOOL_FILE_BYTES
    MeterPort(board, line, source)   async read() -> bytes (b"" at the end of a finite source),
                                     set_line(line), close()
    Wifi(ssid, password)         async keep_up(), connected, rssi()
    Watchdog(timeout_ms)         feed()
    Led(board)                   set(on)
    free_heap() -> int, unique_id() -> str
"""
import sys


def load():
    if sys.platform.startswith("esp32"):
        from . import esp32 as hw
    else:
        from . import unix as hw
    return hw
