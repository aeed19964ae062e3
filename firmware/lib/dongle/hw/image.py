"""Firmware image updates (custom builds): the next OTA partition, behind one small interface.

    slot = next_slot(root)         .size, .write(offset, data), .read(offset, size), .set_boot()
    mark_valid(root)               after the health check: cancel the bootloader's rollback

ESP32: esp32.Partition (get_next_update / writeblocks / set_boot /
mark_app_valid_cancel_rollback). Unix port: a file-backed partition under ROOT/firmware/, so the
same streaming, verify and boot-switch logic runs in the tests.
"""
import os

from . import on_esp32

BLOCK = 4096
UNIX_SIZE = 0x180000   # the size of a stock 4 MB layout's OTA app partition


class EspSlot:
    def __init__(self):
        import esp32
        self.part = esp32.Partition(esp32.Partition.RUNNING).get_next_update()
        self.size = self.part.info()[3]

    def write(self, offset, data):
        """offset: a multiple of BLOCK; data: whole blocks (the last one padded) - erase + write."""
        self.part.writeblocks(offset // BLOCK, data)

    def read(self, offset, size):
        buf = bytearray(size)
        self.part.readblocks(offset // BLOCK, buf)
        return buf

    def set_boot(self):
        self.part.set_boot()


class FileSlot:
    """ROOT/firmware/ota_<n>.bin with ROOT/firmware/boot naming the partition the next boot runs."""

    def __init__(self, root):
        self.folder = root + "/firmware"
        try:
            os.mkdir(self.folder)
        except OSError:
            pass
        running = boot_partition(root)
        self.name = "ota_1" if running == "ota_0" else "ota_0"
        self.path = "%s/%s.bin" % (self.folder, self.name)
        self.size = UNIX_SIZE
        open(self.path, "ab").close()

    def write(self, offset, data):
        with open(self.path, "r+b") as f:
            f.seek(offset)
            f.write(data)

    def read(self, offset, size):
        with open(self.path, "rb") as f:
            f.seek(offset)
            return f.read(size)

    def set_boot(self):
        _write(self.folder + "/boot", self.name)
        _write(self.folder + "/valid", "no")   # like the bootloader: pending until marked valid


def _write(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.rename(path + ".tmp", path)


def _read(path, default):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def boot_partition(root):
    """Unix: the partition the (simulated) bootloader runs; ota_0 on a fresh device."""
    return _read(root + "/firmware/boot", "ota_0")


def image_valid(root):
    return _read(root + "/firmware/valid", "yes") == "yes"


def next_slot(root):
    return EspSlot() if on_esp32() else FileSlot(root)


def mark_valid(root):
    if on_esp32():
        import esp32
        try:
            esp32.Partition.mark_app_valid_cancel_rollback()
        except OSError:
            pass   # a build without rollback support: nothing to cancel
    elif not image_valid(root):
        _write(root + "/firmware/valid", "yes")
