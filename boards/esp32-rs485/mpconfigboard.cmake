# MicroPython custom board: a meterkit dongle on an ESP32 module with 4 MB flash.
# Build it with `make firmware BOARD=<this folder> MICROPY_DIR=...` (tools/build_firmware.py).
set(IDF_TARGET esp32)

# Stock ESP32 settings, minus Bluetooth (sdkconfig.ble), plus ours.
set(SDKCONFIG_DEFAULTS
    boards/sdkconfig.base
    ${SDKCONFIG_IDF_VERSION_SPECIFIC}
    ${MICROPY_BOARD_DIR}/sdkconfig.board
)

# The app frozen as bytecode and the meterkit_c module; the command line may override both.
set(MICROPY_FROZEN_MANIFEST ${MICROPY_BOARD_DIR}/manifest.py)
if(NOT USER_C_MODULES)
    set(USER_C_MODULES ${MICROPY_BOARD_DIR}/../../firmware/cmodules/micropython.cmake)
endif()
