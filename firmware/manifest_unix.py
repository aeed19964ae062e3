# Frozen into the unix port `make micropython` builds (tools/build_micropython.py): the standard
# variant's modules (asyncio, ssl, ...) and the app, as the ESP32 boards freeze it.
include("$(PORT_DIR)/variants/standard/manifest.py")
include("manifest.py")
