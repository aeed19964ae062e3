// meterkit P1 dongle on an ESP32-C3 module (pins in board.json: P1 on UART1, GPIO20).
#define MICROPY_HW_BOARD_NAME               "meterkit esp32c3-p1"
#define MICROPY_HW_MCU_NAME                 "ESP32C3"

// No Bluetooth: the dongle publishes over Wi-Fi, and without NimBLE its RAM goes to the heap.
#define MICROPY_PY_BLUETOOTH                (0)
#define MICROPY_HW_ENABLE_SDCARD            (0)

// GPIO20/21 are UART0's pins and carry the meter's P1 data here: a REPL on UART0 would read
// telegrams as keystrokes (a stray 0x03 is Ctrl-C). The REPL stays on the USB-Serial-JTAG port.
#define MICROPY_HW_ENABLE_UART_REPL         (0)
