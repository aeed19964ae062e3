"""`make micropython`: the unix port built from source (MICROPY_DIR), 64- and 32-bit, the app frozen
with the module list every ESP32 board freezes and meterkit_c linked; a second run builds nothing;
a machine without the source is told how to get it."""
import os
import subprocess
import sys

import pytest

from conftest import ROOT, micropython_source

sys.path.insert(0, str(ROOT / "tools"))
import build_micropython  # noqa: E402

ELF_CLASS = {"unix64": 2, "unix32": 1, "unix32-stock": 1}   # e_ident[EI_CLASS]: 64-, 32-bit
MAXSIZE = {2: 2 ** 63 - 1, 1: 2 ** 31 - 1}
FAST = "gcm=cmodule crc=cmodule p1_scan=viper hdlc=viper"


def make_micropython(source):
    env = dict(os.environ, MICROPY_DIR=str(source))
    return subprocess.run(["make", "-s", "--no-print-directory", "micropython"], cwd=str(ROOT),
                          env=env, capture_output=True, text=True, timeout=900)


def frozen_here(binary):
    """The app modules frozen into binary, as its help('modules') lists them."""
    out = subprocess.run([str(binary), "-c", "help('modules')"], capture_output=True, text=True,
                         env=dict(os.environ, MICROPYPATH=".frozen"), check=True).stdout
    names = [word for word in out.split() if word.split("/")[0] in ("dongle", "meterkit")]
    return sorted(name.replace("/__init__", "").replace("/", ".") for name in names)


def test_a_second_build_is_up_to_date():
    make_micropython(micropython_source())   # whatever changed since the last one
    proc = make_micropython(micropython_source())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("up to date") == 1 + len(build_micropython.TARGETS), proc.stdout
    assert "building" not in proc.stdout, proc.stdout
    assert build_micropython.app_summary() in proc.stdout


@pytest.mark.parametrize("target", sorted(build_micropython.TARGETS))
def test_each_build_is_its_word_size_with_the_app_frozen_and_the_c_module_or_none(target):
    binary = build_micropython.binary(target)
    assert binary == ROOT / "build" / "micropython" / target / "micropython"
    assert binary.read_bytes()[4] == ELF_CLASS[target]
    stock = not build_micropython.TARGETS[target]["app"]
    # the frozen app is what the boards freeze; a stock build has none of it, nor meterkit_c
    assert frozen_here(binary) == ([] if stock else build_micropython.app_modules())
    code = ("import sys\ntry:\n    import meterkit_c\nexcept ImportError:\n    meterkit_c = None\n"
            "print(sys.maxsize, meterkit_c is None)\n"
            "from meterkit import backends\nprint(backends.summary())")
    out = subprocess.run([str(binary), "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, MICROPYPATH=".frozen")).stdout.splitlines()
    assert out[0] == "%d %s" % (MAXSIZE[ELF_CLASS[target]], stock)
    if stock:
        assert out[-1] == "ImportError: no module named 'meterkit'"
    else:
        assert out[1:] == [FAST]


def test_without_the_source_it_says_how_to_get_it(tmp_path):
    proc = make_micropython(tmp_path / "missing")
    assert proc.returncode != 0
    assert "no MicroPython source at %s" % (tmp_path / "missing") in proc.stderr
    assert "git clone https://github.com/micropython/micropython" in proc.stderr
    assert "checkout %s" % build_micropython.KNOWN_GOOD in proc.stderr


def test_a_folder_that_is_no_checkout_or_lacks_submodules(tmp_path):
    proc = make_micropython(tmp_path)
    assert proc.returncode != 0 and "is not a MicroPython checkout" in proc.stderr
    for need in ("py/mpconfig.h", "mpy-cross/Makefile", "ports/unix/Makefile",
                 "tools/makemanifest.py"):
        (tmp_path / need).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / need).write_text("")
    proc = make_micropython(tmp_path)
    assert proc.returncode != 0
    assert "lacks the submodules lib/micropython-lib, lib/mbedtls" in proc.stderr
    assert "make -C %s submodules" % (tmp_path / "ports" / "unix") in proc.stderr
