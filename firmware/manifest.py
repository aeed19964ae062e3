# The app as a firmware freezes it: the meterkit core and the dongle runtime, as bytecode in flash.
# One list for every build: the ESP32 boards (boards/*/manifest.py, `make firmware`) and the unix
# port CI runs (firmware/manifest_unix.py, `make micropython`) include this file.
freeze("lib")
