"""`make firmware BOARD=<board> MICROPY_DIR=<checkout>`: MicroPython for a dongle, app frozen in.

Builds the ESP32 port for a board under boards/ with the app frozen as bytecode
(boards/<board>/manifest.py) and the meterkit_c module (firmware/cmodules), the way MicroPython
documents custom boards:

    make -C $MICROPY_DIR/mpy-cross
    make -C $MICROPY_DIR/ports/esp32 BOARD_DIR=boards/<board> submodules
    make -C $MICROPY_DIR/ports/esp32 BOARD_DIR=boards/<board> \\
        USER_C_MODULES=firmware/cmodules/micropython.cmake FROZEN_MANIFEST=boards/<board>/manifest.py

It needs ESP-IDF 5.x exported in this shell (`. $IDF_PATH/export.sh`: IDF_PATH and idf.py) and a
MicroPython checkout; when either is missing it stops before building and says what to do.
"""
import argparse
import os
import pathlib
import shutil
import subprocess
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import build_micropython  # noqa: E402  (the app manifest, shared with the unix build CI runs)

ROOT = pathlib.Path(__file__).resolve().parent.parent
BOARDS = ROOT / "boards"
C_MODULES = ROOT / "firmware" / "cmodules" / "micropython.cmake"
MICROPYTHON_GIT = build_micropython.MICROPYTHON_GIT
ESP_IDF_DOCS = "https://docs.espressif.com/projects/esp-idf/en/stable/esp32/get-started/"


class NotReady(Exception):
    """Something the build needs is missing; the message says what to do about it."""


def known_boards():
    return sorted(p.parent.name for p in BOARDS.glob("*/mpconfigboard.cmake"))


def board_dir(name):
    if not name:
        raise NotReady("choose a board: make firmware BOARD=<name> MICROPY_DIR=<micropython checkout>"
                       " (boards: %s)" % ", ".join(known_boards()))
    if name not in known_boards():
        raise NotReady("unknown board %r: boards with a MicroPython definition are %s"
                       % (name, ", ".join(known_boards())))
    return BOARDS / name


def micropython_dir(path):
    if not path:
        raise NotReady("MICROPY_DIR is not set: point it at a MicroPython checkout (v1.22 or later), "
                       "e.g. git clone %s && make firmware BOARD=... MICROPY_DIR=$PWD/micropython"
                       % MICROPYTHON_GIT)
    checkout = pathlib.Path(path).expanduser().resolve()
    if not checkout.is_dir():
        raise NotReady("MICROPY_DIR=%s does not exist: clone %s there first" % (path, MICROPYTHON_GIT))
    if not (checkout / "ports" / "esp32" / "Makefile").is_file() or not (checkout / "py" / "mpconfig.h").is_file():
        raise NotReady("MICROPY_DIR=%s is not a MicroPython checkout (no ports/esp32/Makefile or "
                       "py/mpconfig.h): clone %s" % (path, MICROPYTHON_GIT))
    return checkout


def check_esp_idf(environ):
    idf_path = environ.get("IDF_PATH")
    if not idf_path:
        raise NotReady("ESP-IDF is not set up in this shell (IDF_PATH is unset): install ESP-IDF 5.x "
                       "(%s), then run `. $IDF_PATH/export.sh` and try again" % ESP_IDF_DOCS)
    if not pathlib.Path(idf_path, "tools", "idf.py").is_file():
        raise NotReady("IDF_PATH=%s holds no tools/idf.py: it must point at an ESP-IDF 5.x "
                       "checkout (%s)" % (idf_path, ESP_IDF_DOCS))
    if not shutil.which("idf.py", path=environ.get("PATH")):
        raise NotReady("idf.py is not on PATH: run `. %s/export.sh` in this shell first" % idf_path)


def commands(board, checkout):
    """The build, as (working folder, argv) steps."""
    port = checkout / "ports" / "esp32"
    where = ["BOARD_DIR=%s" % board]
    return [
        (checkout, ["make", "-C", "mpy-cross"]),
        (port, ["make"] + where + ["submodules"]),
        (port, ["make"] + where + ["USER_C_MODULES=%s" % C_MODULES,
                                   "FROZEN_MANIFEST=%s" % (board / "manifest.py")]),
    ]


def firmware_path(board, checkout):
    return checkout / "ports" / "esp32" / ("build-" + board.name) / "firmware.bin"


def prepare(board_name, micropython, environ):
    """(board folder, checkout, steps) once everything is in place; NotReady otherwise."""
    board = board_dir(board_name)
    checkout = micropython_dir(micropython)
    check_esp_idf(environ)
    return board, checkout, commands(board, checkout)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--board", default=os.environ.get("BOARD", ""))
    parser.add_argument("--micropython", default=os.environ.get("MICROPY_DIR", ""),
                        help="MicroPython checkout (MICROPY_DIR)")
    parser.add_argument("--dry-run", action="store_true", help="print the build steps, run nothing")
    args = parser.parse_args(argv)
    try:
        board, checkout, steps = prepare(args.board, args.micropython, os.environ)
    except NotReady as problem:
        print("make firmware: %s" % problem, file=sys.stderr)
        return 2
    # what the board manifest freezes of the app: the list `make micropython` freezes too
    print(build_micropython.app_summary(board / "manifest.py", {"BOARD_DIR": board}), flush=True)
    for folder, argv_ in steps:
        print("(cd %s && %s)" % (folder, " ".join(argv_)), flush=True)
        if not args.dry_run and subprocess.run(argv_, cwd=str(folder)).returncode:
            print("make firmware: the step above failed; its output says why", file=sys.stderr)
            return 1
    if not args.dry_run:
        image = firmware_path(board, checkout)
        print("\nfirmware: %s\nflash it: make -C %s BOARD_DIR=%s PORT=/dev/ttyUSB0 deploy"
              % (image, checkout / "ports" / "esp32", board))
    return 0


if __name__ == "__main__":
    sys.exit(main())
