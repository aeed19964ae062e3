// meterkit P1 dongle on an ESP32-WROOM-32 (pins in board.json: P1 on UART2, GPIO16).
#define MICROPY_HW_BOARD_NAME               "meterkit esp32-p1"
#define MICROPY_HW_MCU_NAME                 "ESP32"

// No Bluetooth: the dongle publishes over Wi-Fi, and without NimBLE its RAM goes to the heap.
#define MICROPY_PY_BLUETOOTH                (0)
#define MICROPY_HW_ENABLE_SDCARD            (0)
