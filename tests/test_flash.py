"""meterkit flash without hardware: chip -> offset, image header checks, esptool call building."""
import inspect
import sys

import esptool
import pytest
from esptool.bin_image import ELFSection
from esptool.targets import CHIP_DEFS

from conftest import ROOT

sys.path.insert(0, str(ROOT / "host"))
from meterkit_host import cli, flash  # noqa: E402


def esptool_image(chip_name):
    """A real (tiny) firmware image for chip_name, written by esptool's own image class."""
    image = CHIP_DEFS[chip_name].BOOTLOADER_IMAGE()
    image.segments = [ELFSection(b".data", 0x3FC80000, b"\x00" * 64, 0)]
    image.entrypoint = 0x40380000
    return image.save(None)


@pytest.mark.parametrize("chip, offset", [
    ("esp32", 0x1000), ("esp32s2", 0x1000),                       # MicroPython's docs: 0x1000
    ("esp32c3", 0x0), ("esp32s3", 0x0), ("esp32c6", 0x0), ("esp32h2", 0x0),
    ("esp32p4", 0x2000), ("esp32c5", 0x2000),
])
def test_the_image_goes_where_the_chip_rom_loads_the_bootloader(chip, offset):
    assert flash.flash_offset(CHIP_DEFS[chip]) == offset


@pytest.mark.parametrize("chip", ["esp32", "esp32s2", "esp32s3", "esp32c3", "esp32c6"])
def test_the_image_header_names_its_chip(chip):
    data = esptool_image(chip)
    assert flash.image_chip(data) is CHIP_DEFS[chip]
    assert flash.image_problem(CHIP_DEFS[chip], data) is None


def test_an_image_for_another_chip_is_refused_with_both_names():
    problem = flash.image_problem(CHIP_DEFS["esp32"], esptool_image("esp32c3"), "c3.bin")
    assert problem == "c3.bin is built for an ESP32-C3, but the chip on the port is an ESP32"


@pytest.mark.parametrize("data", [b"", b"\xe9\x01", b"MicroPython .mpy, not an image" * 4])
def test_something_that_is_no_image_is_refused(data):
    assert "not an ESP32 firmware image" in flash.image_problem(CHIP_DEFS["esp32"], data)


@pytest.mark.parametrize("chip", ["esp32", "esp32c3", "esp32s3"])
def test_flash_steps_are_esptool_calls_with_arguments_esptool_accepts(chip):
    data = esptool_image(chip)
    steps = flash.flash_steps(CHIP_DEFS[chip], data)
    assert [name for name, _ in steps] == ["erase_flash", "write_flash", "verify_flash", "reset_chip"]
    for name, kwargs in steps:
        function = getattr(esptool, name)
        inspect.signature(function).bind(object(), **kwargs)   # raises if esptool would reject them
    write, verify = steps[1][1], steps[2][1]
    assert write["addr_data"] == verify["addr_data"] == [(CHIP_DEFS[chip].BOOTLOADER_FLASH_OFFSET, data)]
    assert write["flash_size"] == "keep"   # the image's own header stays as MicroPython built it


def test_the_command_reports_a_missing_file_and_an_absent_port(tmp_path, capsys):
    assert cli.main(["flash", "--port", "/dev/null", "--firmware", str(tmp_path / "none.bin")]) == 2
    assert "no such file" in capsys.readouterr().err
    image = tmp_path / "esp32.bin"
    image.write_bytes(esptool_image("esp32"))
    assert cli.main(["flash", "--port", str(tmp_path / "ttyUSB9"), "--firmware", str(image)]) == 1
    assert "flash failed" in capsys.readouterr().err and image.read_bytes()[:1] == b"\xe9"
