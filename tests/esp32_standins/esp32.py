"""Stand-in for MicroPython's `esp32` module (Partition only): a test fixture, not product code.

Models esp32.Partition as documented: Partition(id, block_size=4096) with id a label or
Partition.BOOT / Partition.RUNNING; info() -> (type, subtype, addr, size, label, encrypted);
the block protocol readblocks(n, buf[, offset]) / writeblocks(n, buf[, offset]) (without an
offset the blocks are erased first, with one the flash must have been erased by ioctl(6, n):
a write can only clear bits) / ioctl(4: block count, 5: block size, 6: erase block n);
get_next_update(); set_boot() (ESP-IDF validates the image first: it must start with the
0xE9 magic byte, else OSError); the classmethod mark_app_valid_cancel_rollback().

The flash is FLASH (label -> bytearray), the otadata is OTADATA (test hooks).
"""
BLOCK = 4096
SLOT_SIZE = 16 * BLOCK     # small OTA slots keep the test fast; the layout is the stock one
FLASH = {"ota_0": bytearray(b"\xe9" + b"\xff" * (SLOT_SIZE - 1)),
         "ota_1": bytearray(b"\xff" * SLOT_SIZE)}
OTADATA = {"running": "ota_0", "boot": "ota_0", "state": "valid"}
ESP_ERR_OTA_VALIDATE_FAILED = 0x1503


class Partition:
    BOOT, RUNNING = 0, 1
    TYPE_APP, TYPE_DATA = 0, 1

    def __init__(self, id, block_size=BLOCK):
        if id == Partition.BOOT:
            id = OTADATA["boot"]
        elif id == Partition.RUNNING:
            id = OTADATA["running"]
        if id not in FLASH:
            raise ValueError("partition not found")
        self.label, self.block_size = id, block_size
        self.flash = FLASH[id]

    def info(self):
        address = 0x10000 + (0 if self.label == "ota_0" else 0x180000)
        return (Partition.TYPE_APP, 0x10 + int(self.label[-1]), address, len(self.flash),
                self.label, False)

    def _span(self, block_num, buf, offset):
        start = block_num * self.block_size + offset
        if start < 0 or start + len(buf) > len(self.flash):
            raise OSError(-0x102)   # ESP_ERR_INVALID_ARG: outside the partition
        return start

    def readblocks(self, block_num, buf, offset=0):
        start = self._span(block_num, buf, offset)
        buf[:] = self.flash[start:start + len(buf)]

    def writeblocks(self, block_num, buf, offset=None):
        if offset is None:   # the simple protocol: whole blocks, erased here
            if len(buf) % self.block_size:
                raise ValueError("buffer is not a whole number of blocks")
            for n in range(len(buf) // self.block_size):
                self.ioctl(6, block_num + n)
            offset = 0
        start = self._span(block_num, buf, offset)
        for i, b in enumerate(buf):   # NOR flash: programming only clears bits
            self.flash[start + i] &= b

    def ioctl(self, op, arg):
        if op == 4:
            return len(self.flash) // self.block_size
        if op == 5:
            return self.block_size
        if op == 6:
            start = self._span(arg, b"\x00" * self.block_size, 0)
            self.flash[start:start + self.block_size] = b"\xff" * self.block_size
            return 0
        return 0   # 1 init, 2 deinit, 3 sync: nothing to do
        
    def get_next_update(self):
        return Partition("ota_1" if self.label == "ota_0" else "ota_0")

    def set_boot(self):
        if self.flash[0] != 0xE9:
            raise OSError(-ESP_ERR_OTA_VALIDATE_FAILED)
        OTADATA.update(boot=self.label, state="new")

    @classmethod
    def mark_app_valid_cancel_rollback(cls):
        OTADATA["state"] = "valid"
