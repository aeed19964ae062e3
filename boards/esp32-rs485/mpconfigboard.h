// meterkit RS485 (Modbus) dongle on an ESP32 module (pins in board.json: M-Bus transceiver on UART2).
#define MICROPY_HW_BOARD_NAME               "meterkit esp32-rs485"
#define MICROPY_HW_MCU_NAME                 "ESP32"

// No Bluetooth: the dongle publishes over Wi-Fi, and without NimBLE its RAM goes to the heap.
#define MICROPY_PY_BLUETOOTH                (0)
#define MICROPY_HW_ENABLE_SDCARD            (0)
