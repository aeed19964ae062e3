# Frozen into the firmware: the stock ESP32 port modules (asyncio, networking, ...) and the whole app
# (meterkit core + dongle runtime, firmware/manifest.py: the list the unix build CI runs freezes too)
# as bytecode in flash, so importing it costs no heap for code.
# Used by `make firmware BOARD=<this folder>` (tools/build_firmware.py); see the README.
include("$(PORT_DIR)/boards/manifest.py")
include("$(BOARD_DIR)/../../firmware/manifest.py")
