"""`meterkit flash --port PORT --firmware FILE`: put a stock MicroPython image onto a dongle.

esptool, used as a library, finds out which chip is on the port; the image goes where that chip's
ROM looks for the second-stage bootloader (esptool's BOOTLOADER_FLASH_OFFSET: 0x1000 on the ESP32
and ESP32-S2, 0x0 on the C3/S3/C6…, 0x2000 on the P4/C5), because MicroPython's downloadable .bin
is bootloader + partition table + app merged from that offset. The image header names the chip it
was built for; an image for another chip is refused before anything is erased.
"""
import pathlib
import struct
import sys

from .arguments import usage_error

IMAGE_MAGIC = 0xE9
CHIP_ID_OFFSET = 12      # the extended header starts at byte 8; its chip id is a u16 at +4
CONNECT_BAUD = 115200    # every ROM bootloader answers at this rate; faster only after the stub runs


def chips():
    """esptool's chip classes by name ('esp32', 'esp32c3', …)."""
    from esptool.targets import CHIP_DEFS
    return CHIP_DEFS


def flash_offset(chip):
    """Where the merged MicroPython image starts for this chip class."""
    return chip.BOOTLOADER_FLASH_OFFSET


def image_chip(data):
    """The esptool chip class an image was built for, or None if data is no ESP32-family image."""
    if len(data) < CHIP_ID_OFFSET + 2 or data[0] != IMAGE_MAGIC:
        return None
    chip_id = struct.unpack_from("<H", data, CHIP_ID_OFFSET)[0]
    for name, chip in chips().items():
        if name != "esp8266" and chip.IMAGE_CHIP_ID == chip_id:
            return chip
    return None


def image_problem(chip, data, name="the firmware"):
    """Why data must not be flashed onto chip, or None when it fits."""
    built_for = image_chip(data)
    if built_for is None:
        return "%s is not an ESP32 firmware image (it must start with the 0xE9 image header)" % name
    if built_for.IMAGE_CHIP_ID != chip.IMAGE_CHIP_ID:
        return "%s is built for an %s, but the chip on the port is an %s" % (
            name, built_for.CHIP_NAME, chip.CHIP_NAME)
    return None


def flash_steps(chip, data):
    """[(esptool function name, keyword arguments)] after connecting: erase, write, verify, reset."""
    addr_data = [(flash_offset(chip), data)]
    return [
        ("erase_flash", {}),
        ("write_flash", {"addr_data": addr_data, "flash_size": "keep"}),
        ("verify_flash", {"addr_data": addr_data, "flash_size": "keep"}),
        ("reset_chip", {"reset_mode": "hard-reset"}),
    ]


def flash(port, firmware, baud=460800, force=False):
    """Connect, check the image against the chip, then run flash_steps. Returns the chip name."""
    import esptool
    data = pathlib.Path(firmware).read_bytes()
    esp = esptool.detect_chip(port, CONNECT_BAUD)
    try:
        problem = image_problem(esp, data, pathlib.Path(firmware).name)
        if problem and not force:
            raise esptool.FatalError(problem + " (--force flashes it anyway)")
        print("%s on %s: writing %s (%d bytes) at 0x%x" % (esp.CHIP_NAME, port, firmware,
                                                          len(data), flash_offset(esp)))
        esp = esptool.run_stub(esp)
        if baud != CONNECT_BAUD:
            esp.change_baud(baud)
        esptool.attach_flash(esp)
        for name, kwargs in flash_steps(esp, data):
            getattr(esptool, name)(esp, **kwargs)   # esptool draws its own progress bars
        return esp.CHIP_NAME
    finally:
        esp._port.close()


def add_command(commands):
    cmd = commands.add_parser("flash", help="flash stock MicroPython onto a dongle over USB")
    cmd.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB0 or COM3")
    cmd.add_argument("--firmware", required=True, help="MicroPython .bin for the dongle's chip")
    cmd.add_argument("--baud", type=int, default=460800, help="baud rate for writing (default 460800)")
    cmd.add_argument("--force", action="store_true", help="flash even an image built for another chip")
    cmd.set_defaults(run=run)


def run(args):
    if not pathlib.Path(args.firmware).is_file():
        return usage_error("no such file: %s" % args.firmware)
    import esptool
    try:
        chip = flash(args.port, args.firmware, args.baud, args.force)
    except (esptool.FatalError, OSError) as error:
        sys.stderr.write("meterkit: flash failed: %s\n" % error)
        return 1
    print("flashed and verified %s; next: meterkit deploy --port %s" % (chip, args.port))
    return 0
