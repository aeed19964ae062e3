# MicroPython custom board: a meterkit P1 dongle on an ESP32-C3 module (4 MB flash, RISC-V).
# Build it with `make firmware BOARD=esp32c3-p1 MICROPY_DIR=...` (tools/build_firmware.py).
set(IDF_TARGET esp32c3)

# Stock settings, minus Bluetooth (sdkconfig.ble), plus ours.
set(SDKCONFIG_DEFAULTS
    boards/sdkconfig.base
    ${SDKCONFIG_IDF_VERSION_SPECIFIC}
    ${MICROPY_BOARD_DIR}/sdkconfig.board
)

# The core's @micropython.viper loops must be frozen as RISC-V native code (the port only sets
# -march for Xtensa chips in some releases).
set(MICROPY_CROSS_FLAGS -march=rv32imc)

# The app frozen as bytecode and the meterkit_c module; the command line may override both.
set(MICROPY_FROZEN_MANIFEST ${MICROPY_BOARD_DIR}/manifest.py)
if(NOT USER_C_MODULES)
    set(USER_C_MODULES ${MICROPY_BOARD_DIR}/../../firmware/cmodules/micropython.cmake)
endif()
